//! WebSocket on the `http_server` input's `ws_path`, as clients see it: a real client
//! (tungstenite) for the ordinary exchanges, and a raw socket for what a well-behaved
//! client never sends (unmasked frames, invalid UTF-8, oversized messages, hand-made
//! fragments). Each test runs a real `sluice`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{connect, exchange, Reader, Sluice};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// The weather pipeline with a WebSocket endpoint beside its HTTP path; `extra` is more
/// `http_server` fields.
fn start(extra: &str) -> Sluice {
    Sluice::start(&format!(
        r#"http:
  address: 127.0.0.1:0
input:
  http_server:
    path: /weather
    ws_path: /ws
{extra}
pipeline:
  processors:
    - mapping: |
        root.city = this.location
        root.tenant = @tenant
        root.agent = @http_server_user_agent
output:
  sync_response: {{}}
"#
    ))
}

type Client = tungstenite::WebSocket<TcpStream>;

fn client(s: &Sluice, path: &str) -> Client {
    let stream = connect(s.addr);
    let mut request = format!("ws://{}{path}", s.addr)
        .into_client_request()
        .unwrap();
    let agent = "sluice-ws-test/1".parse().unwrap();
    request.headers_mut().insert("User-Agent", agent);
    let (ws, response) = tungstenite::client(request, stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

fn read_text(ws: &mut Client) -> String {
    match ws.read().expect("a message") {
        Message::Text(t) => t,
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[test]
fn messages_are_answered_in_order_with_the_upgrade_metadata() {
    let s = start("");
    let mut ws = client(&s, "/ws?tenant=acme");
    // All sent before any answer is read: answers must still come back in order.
    let cities: Vec<String> = (0..50).map(|i| format!("city-{i}")).collect();
    for c in &cities {
        ws.send(Message::text(format!(r#"{{"location":"{c}"}}"#)))
            .unwrap();
    }
    for c in &cities {
        let answer: serde_json::Value = serde_json::from_str(&read_text(&mut ws)).unwrap();
        assert_eq!(answer["city"], c.as_str());
        assert_eq!(answer["tenant"], "acme");
        assert_eq!(answer["agent"], "sluice-ws-test/1");
    }
    // Binary in, binary out.
    ws.send(Message::binary(r#"{"location":"Oslo"}"#.as_bytes()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Binary(b) => assert!(String::from_utf8(b).unwrap().contains("Oslo")),
        other => panic!("expected binary, got {other:?}"),
    }
    ws.close(None).unwrap();
    // The server answers the close handshake and closes the connection.
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => {
                assert!(frame.is_none_or(|f| f.code == CloseCode::Normal));
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn welcome_message_ping_and_a_200_kb_message() {
    let s = start("    ws_welcome_message: welcome to sluice");
    let mut ws = client(&s, "/ws");
    assert_eq!(read_text(&mut ws), "welcome to sluice");

    ws.send(Message::Ping(b"are you there".to_vec())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(p, b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }

    let big = "x".repeat(200 * 1024);
    ws.send(Message::text(format!(r#"{{"location":"{big}"}}"#)))
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&read_text(&mut ws)).unwrap();
    assert_eq!(answer["city"].as_str().unwrap().len(), big.len());
}

#[test]
fn http_path_keeps_working_beside_an_open_websocket() {
    let s = start("");
    let mut ws = client(&s, "/ws");
    let body = r#"{"location":"Berlin"}"#;
    let raw = format!(
        "POST /weather HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(s.addr, raw.as_bytes());
    assert_eq!(r.status, 200);
    assert!(r.text().contains(r#""city":"Berlin""#));
    ws.send(Message::text(body)).unwrap();
    assert!(read_text(&mut ws).contains("Berlin"));
}

#[test]
fn bad_upgrades_get_405_400_and_426() {
    let s = start("");
    let ask = |request: &str| exchange(s.addr, request.as_bytes());
    let headers = "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let r = ask(&format!(
        "POST /ws HTTP/1.1\r\n{headers}Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
    ));
    assert_eq!(r.status, 405);
    let r = ask("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Connection"), "{}", r.text());
    let r = ask(&format!(
        "GET /ws HTTP/1.1\r\n{headers}Sec-WebSocket-Version: 8\r\n\r\n"
    ));
    assert_eq!(r.status, 426);
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));
    // The RFC's example key gets the RFC's accept value.
    let r = ask(&format!(
        "GET /ws HTTP/1.1\r\n{headers}Sec-WebSocket-Version: 13\r\n\r\n"
    ));
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

/// A hand-driven client for frames a real client library will not send.
struct Raw {
    stream: TcpStream,
    reader: Reader<TcpStream>,
}

impl Raw {
    fn open(s: &Sluice) -> Raw {
        let mut stream = connect(s.addr);
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let mut reader = Reader::new(stream.try_clone().unwrap());
        assert_eq!(reader.response(false).unwrap().status, 101);
        Raw { stream, reader }
    }

    /// Sends one frame; `mask` None sends it unmasked (a protocol error from a client).
    fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => out.push(m | n as u8),
            n @ 126..=0xFFFF => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        // The server may close before it has read everything of a refused frame.
        let _ = self.stream.write_all(&out);
    }

    /// Reads one server frame: (opcode, payload).
    fn read(&mut self) -> (u8, Vec<u8>) {
        let inner = self.reader.get_mut();
        let mut head = [0u8; 2];
        inner.read_exact(&mut head).expect("a frame");
        assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                inner.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                inner.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0; len];
        inner.read_exact(&mut payload).unwrap();
        (head[0] & 0x0F, payload)
    }

    /// Reads the server's close frame and its code, then expects the connection to end.
    fn close_code(&mut self) -> u16 {
        let (opcode, payload) = self.read();
        assert_eq!(opcode, 0x8, "expected a close frame, payload {payload:?}");
        assert!(
            self.reader.closed(),
            "the server closes after its close frame"
        );
        u16::from_be_bytes([payload[0], payload[1]])
    }
}

const KEY: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

#[test]
fn fragmented_message_with_a_ping_between_fragments() {
    let s = start("");
    let mut raw = Raw::open(&s);
    let msg = br#"{"location":"Fragmented Town"}"#;
    raw.frame(false, 0x1, &msg[..5], KEY);
    raw.frame(true, 0x9, b"mid", KEY);
    raw.frame(false, 0x0, &msg[5..20], KEY);
    raw.frame(true, 0x0, &msg[20..], KEY);
    assert_eq!(raw.read(), (0xA, b"mid".to_vec()));
    let (opcode, payload) = raw.read();
    assert_eq!(opcode, 0x1);
    assert!(String::from_utf8(payload)
        .unwrap()
        .contains("Fragmented Town"));
    // A clean close is echoed with its code.
    raw.frame(true, 0x8, &1000u16.to_be_bytes(), KEY);
    assert_eq!(raw.close_code(), 1000);
}

#[test]
fn a_frame_split_across_an_idle_second_is_read_whole() {
    // The first bytes wait in the read buffer while the connection is idle past the
    // point where it frees its buffers: they must be kept.
    let s = start("");
    let mut raw = Raw::open(&s);
    let mut frame = vec![0x81, 0x80 | 20];
    frame.extend_from_slice(&KEY.unwrap());
    let msg = br#"{"location":"Split"}"#;
    frame.extend(msg.iter().enumerate().map(|(i, b)| b ^ KEY.unwrap()[i % 4]));
    raw.stream.write_all(&frame[..9]).unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    raw.stream.write_all(&frame[9..]).unwrap();
    let (opcode, payload) = raw.read();
    assert_eq!(opcode, 0x1);
    let text = String::from_utf8(payload).unwrap();
    assert!(text.contains(r#""city":"Split""#), "{text}");
    // And after another idle second with nothing buffered, the next message.
    std::thread::sleep(Duration::from_millis(1300));
    raw.frame(true, 0x1, br#"{"location":"Later"}"#, KEY);
    let (_, payload) = raw.read();
    assert!(String::from_utf8(payload).unwrap().contains("Later"));
}

#[test]
fn protocol_errors_close_with_their_codes() {
    let s = start("    max_body_bytes: 1000");
    let mut raw = Raw::open(&s);
    raw.frame(true, 0x1, br#"{"location":"x"}"#, None);
    assert_eq!(raw.close_code(), 1002, "unmasked frame");

    let mut raw = Raw::open(&s);
    raw.frame(true, 0x1, &[b'"', 0xC3, 0x28, b'"'], KEY);
    assert_eq!(raw.close_code(), 1007, "invalid UTF-8");

    let mut raw = Raw::open(&s);
    raw.frame(true, 0x2, &[b'a'; 1001], KEY);
    assert_eq!(raw.close_code(), 1009, "over max_body_bytes");

    // Messages before the bad one were answered.
    let mut raw = Raw::open(&s);
    raw.frame(true, 0x1, br#"{"location":"ok"}"#, KEY);
    raw.frame(true, 0x0, b"stray continuation", KEY);
    assert_eq!(raw.read().0, 0x1);
    assert_eq!(raw.close_code(), 1002);
}

#[test]
fn a_failed_output_closes_with_1011_and_the_error() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    ws_path: /ws\n\
         output:\n  reject: 'no room for ${! content() }'\n",
    );
    let mut raw = Raw::open(&s);
    raw.frame(true, 0x1, b"Berlin", KEY);
    let (opcode, payload) = raw.read();
    assert_eq!(opcode, 0x8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1011);
    assert_eq!(&payload[2..], b"no room for Berlin");
}

#[test]
fn idle_connections_are_closed_with_1001() {
    let s = start("    idle_timeout: 300ms");
    let mut raw = Raw::open(&s);
    let started = Instant::now();
    assert_eq!(raw.close_code(), 1001);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_slow_message_holds_back_its_own_connection_only() {
    use support::upstream::{Reply, Upstream};
    // The upstream answers "slow" messages after 2 s, everything else at once.
    let up = Upstream::start(|req, _| {
        if req.body.starts_with(b"slow") {
            std::thread::sleep(Duration::from_secs(2));
        }
        Reply::Send(200, vec![], [b"seen ", &req.body[..]].concat())
    });
    let s = Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n    ws_path: /ws\n\
         output:\n  http_client:\n    url: {}\n    propagate_response: true\n    max_in_flight: 8\n",
        up.url("/")
    ));
    let mut ws = client(&s, "/ws");
    let started = Instant::now();
    ws.send(Message::text("slow one")).unwrap();
    ws.send(Message::text("fast two")).unwrap();
    // Meanwhile the shard serves HTTP at once.
    std::thread::sleep(Duration::from_millis(100));
    let http_started = Instant::now();
    let r = exchange(
        s.addr,
        b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nfast",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "seen fast"));
    // Answered long before the slow message's upstream replies.
    let http_took = http_started.elapsed();
    assert!(http_took < Duration::from_millis(1500), "{http_took:?}");
    // The connection's answers keep their order: the fast one waits for the slow one.
    assert_eq!(read_text(&mut ws), "seen slow one");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(read_text(&mut ws), "seen fast two");
}

#[test]
fn a_path_shared_with_ws_path_serves_http_unless_asked_for_a_websocket() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /both\n    ws_path: /both\n\
         output:\n  sync_response: {}\n",
    );
    // Another protocol's upgrade header is not a WebSocket request: plain HTTP answers.
    let r = exchange(
        s.addr,
        b"POST /both HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let mut ws = client(&s, "/both");
    ws.send(Message::text("over ws")).unwrap();
    assert_eq!(read_text(&mut ws), "over ws");
}
