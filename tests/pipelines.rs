//! Pipelines end to end, as a client sees them: Bloblang mappings, statuses and headers
//! from metadata, partial responses, brokers and their ack rules, switch, catch,
//! multipart in and out. Each test runs a real `sluice` and talks HTTP to it.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{connect, exchange, Reader, Response, Sluice};

fn start(body: &str) -> Sluice {
    Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n{body}"
    ))
}

fn start_file(path: &str) -> Sluice {
    let yaml = std::fs::read_to_string(path).unwrap();
    Sluice::start_with(
        &yaml,
        &[
            "--set",
            "http.address=127.0.0.1:0",
            "--set",
            "runtime.shards=1",
        ],
    )
}

fn post(s: &Sluice, path: &str, body: &str) -> Response {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(s.addr, raw.as_bytes())
}

fn is_rfc3339(s: &str) -> bool {
    // 2026-11-29T02:24:09.123456Z or with an offset.
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':'
}

#[test]
fn weather_config_answers_the_forecast() {
    let s = start_file("config/weather.yaml");
    let r = post(&s, "/weather", r#"{ "location": "Berlin" }"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        r#"{"city":"Berlin","forecast":"Clear skies with light winds","temperature_c":22}"#
    );
}

#[test]
fn partial_response_is_stored_before_processing_goes_on() {
    let s = start_file("config/weather-partial.yaml");
    let r = post(&s, "/weather", r#"{ "location": "Berlin" }"#);
    assert_eq!(
        (r.status, r.text()),
        (200, "Received weather report for Berlin".to_string())
    );
}

#[test]
fn fan_out_example_answers_after_both_outputs() {
    let s = start_file("config/weather-fanout.yaml");
    let r = post(&s, "/weather", r#"{ "location": "Berlin" }"#);
    assert_eq!(r.status, 200);
    let text = r.text();
    let rest = text.strip_prefix(r#"{"received_at":""#).expect(&text);
    let (time, tail) = rest.split_once('"').unwrap();
    assert!(is_rfc3339(time), "{time}");
    assert_eq!(tail, r#","status":"received"}"#);
}

#[test]
fn status_and_headers_come_from_metadata() {
    let s = start(
        "    sync_response:\n      status: ${! @status }\n      headers:\n        Content-Type: application/json\n        X-City: ${! @city }\n\
         pipeline:\n  processors:\n    - mapping: |\n        meta status = if this.ok { 200 } else { 400 }\n        meta city = this.city\n        root.error = if !this.ok { \"bad\" }\n\
         output:\n  sync_response: {}\n",
    );
    let r = post(&s, "/p", r#"{"ok":false,"city":"Oslo"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-city"), Some("Oslo"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"error":"bad"}"#);
    let r = post(&s, "/p", r#"{"ok":true,"city":"Rome"}"#);
    assert_eq!((r.status, r.header("x-city")), (200, Some("Rome")));
}

#[test]
fn a_status_that_is_not_a_number_answers_502() {
    let s = start(
        "    sync_response:\n      status: ${! @status }\n\
         pipeline:\n  processors:\n    - mapping: 'meta status = \"teapot\"'\n\
         output:\n  sync_response: {}\n",
    );
    assert_eq!(post(&s, "/p", "{}").status, 502);
}

#[test]
fn failed_mapping_keeps_the_payload_and_deleted_answers_empty() {
    let s = start(
        "pipeline:\n  processors:\n    - mapping: |\n        root = if this.drop == true { deleted() } else { this.missing.uppercase() }\n\
         output:\n  sync_response: {}\n",
    );
    // A processing error is not an HTTP error: the unchanged payload comes back.
    let r = post(&s, "/p", r#"{"drop":false}"#);
    assert_eq!((r.status, r.text()), (200, r#"{"drop":false}"#.to_string()));
    // Deleted: acked, nothing stored: 200 with an empty body.
    let r = post(&s, "/p", r#"{"drop":true}"#);
    assert_eq!((r.status, r.text()), (200, String::new()));
}

#[test]
fn catch_maps_an_error_to_a_status() {
    let s = start(
        "    sync_response:\n      status: ${! @status.or(\"200\") }\n\
         pipeline:\n  processors:\n    - mapping: 'root.name = this.name.uppercase()'\n    - catch:\n        - mapping: |\n            meta status = \"422\"\n            root.error = error()\n\
         output:\n  sync_response: {}\n",
    );
    let r = post(&s, "/p", r#"{"name":5}"#);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("error"), "{}", r.text());
    let r = post(&s, "/p", r#"{"name":"ada"}"#);
    assert_eq!((r.status, r.text()), (200, r#"{"name":"ADA"}"#.to_string()));
}

#[test]
fn two_sync_response_children_answer_multipart() {
    let s = start(
        "output:\n  broker:\n    pattern: fan_out_sequential\n    outputs:\n\
         \x20     - sync_response: {}\n        processors:\n          - mapping: 'root = \"first\"'\n\
         \x20     - sync_response: {}\n        processors:\n          - mapping: |\n              meta \"Content-Type\" = \"text/x-second\"\n              root.n = 2\n",
    );
    let r = post(&s, "/p", "{}");
    assert_eq!(r.status, 200);
    let ctype = r.header("content-type").unwrap().to_string();
    let boundary = ctype
        .strip_prefix("multipart/form-data; boundary=")
        .expect(&ctype);
    let body = r.text();
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 4, "{body}");
    // Each part's type is its message's Content-Type metadata: the request's own for
    // the first, the one the mapping set for the second.
    assert_eq!(
        parts[1],
        "\r\nContent-Type: application/json\r\n\r\nfirst\r\n"
    );
    assert_eq!(
        parts[2],
        "\r\nContent-Type: text/x-second\r\n\r\n{\"n\":2}\r\n"
    );
    assert_eq!(parts[3], "--\r\n");
}

#[test]
fn fan_out_fail_fast_with_reject_answers_502_with_its_message() {
    let s = start(
        "output:\n  broker:\n    pattern: fan_out_fail_fast\n    outputs:\n\
         \x20     - sync_response: {}\n      - reject: 'refused: ${! this.id }'\n",
    );
    let r = post(&s, "/p", r#"{"id":"a1"}"#);
    assert_eq!((r.status, r.text()), (502, "refused: a1\n".to_string()));
}

#[test]
fn fan_out_retrying_a_failing_child_answers_408_at_the_deadline() {
    let s = start(
        "    timeout: 1s\n\
         output:\n  broker:\n    pattern: fan_out\n    outputs:\n      - sync_response: {}\n      - reject: always\n",
    );
    let started = Instant::now();
    let r = post(&s, "/p", "{}");
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.text()),
        (408, "Request timed out\n".to_string())
    );
    assert!(took >= Duration::from_millis(990), "{took:?}");
    assert!(
        took < Duration::from_millis(1800),
        "answered late: {took:?}"
    );
}

#[test]
fn round_robin_alternates_on_one_connection() {
    let s = start(
        "output:\n  broker:\n    pattern: round_robin\n    outputs:\n\
         \x20     - sync_response: {}\n        processors:\n          - mapping: 'root = \"a\"'\n\
         \x20     - sync_response: {}\n        processors:\n          - mapping: 'root = \"b\"'\n",
    );
    let mut c = connect(s.addr);
    let mut r = Reader::new(c.try_clone().unwrap());
    let mut seen = String::new();
    for _ in 0..6 {
        c.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap();
        seen.push_str(&r.response(false).unwrap().text());
    }
    assert!(seen == "ababab" || seen == "bababa", "{seen}");
}

#[test]
fn switch_routes_by_condition() {
    let s = start(
        "output:\n  switch:\n    cases:\n\
         \x20     - check: this.kind == \"a\"\n        output:\n          sync_response: {}\n          processors:\n            - mapping: 'root = \"went to a\"'\n\
         \x20     - check: this.kind == \"b\"\n        output:\n          reject: 'b is refused'\n\
         \x20     - output:\n          sync_response: {}\n          processors:\n            - mapping: 'root = \"default\"'\n",
    );
    assert_eq!(post(&s, "/p", r#"{"kind":"a"}"#).text(), "went to a");
    let r = post(&s, "/p", r#"{"kind":"b"}"#);
    assert_eq!((r.status, r.text()), (502, "b is refused\n".to_string()));
    assert_eq!(post(&s, "/p", r#"{"kind":"c"}"#).text(), "default");
}

#[test]
fn a_multipart_request_is_a_batch_answered_part_by_part() {
    let s = start(
        "pipeline:\n  processors:\n    - mapping: 'root = content().uppercase()'\n\
         output:\n  sync_response: {}\n",
    );
    let body = "--XB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XB\r\nContent-Type: text/plain\r\n\r\nworld\r\n--XB--\r\n";
    let raw = format!(
        "POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/mixed; boundary=XB\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(s.addr, raw.as_bytes());
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    let hello = text.find("\r\n\r\nHELLO\r\n").expect(&text);
    let world = text.find("\r\n\r\nWORLD\r\n").expect(&text);
    assert!(hello < world);
    assert!(
        text.matches("Content-Type: text/plain").count() == 2,
        "{text}"
    );
    // A malformed multipart body is a 400.
    let bad = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/mixed; boundary=XB\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(exchange(s.addr, bad.as_bytes()).status, 400);
}

#[test]
fn processor_and_output_metrics_count_errors() {
    let s = start(
        "pipeline:\n  processors:\n    - label: upper\n      mapping: 'root = this.x.uppercase()'\n\
         output:\n  label: out\n  sync_response: {}\n",
    );
    post(&s, "/p", r#"{"x":"a"}"#);
    post(&s, "/p", r#"{"x":1}"#);
    let m = exchange(s.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").text();
    assert!(
        m.contains("processor_received{label=\"upper\",path=\"root.pipeline.processors.0\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("processor_error{label=\"upper\",path=\"root.pipeline.processors.0\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("output_sent{label=\"out\",path=\"root.output\"} 2"),
        "{m}"
    );
}

/// A mapping that writes no metadata passes the message's on unchanged (sluice moves
/// it rather than copying it); one that writes some changes only what it writes.
#[test]
fn metadata_passes_through_mappings_that_do_not_write_it() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /m\n\
         pipeline:\n  processors:\n    - mapping: 'root.trace = metadata(\"Trace\")'\n\
         \x20   - mapping: |\n        meta status = \"201\"\n        meta Trace = deleted()\n        root = this\n\
         \x20   - mapping: 'root = [this.trace, metadata(\"X-City\"), @status, metadata(\"Trace\")]'\n\
         output:\n  sync_response: {}\n",
    );
    let raw =
        "POST /m HTTP/1.1\r\nHost: x\r\nX-City: Berlin\r\nTrace: t1\r\nContent-Length: 2\r\n\r\n{}";
    let r = exchange(s.addr, raw.as_bytes());
    assert_eq!(
        (r.status, r.text()),
        (200, r#"["t1","Berlin","201",null]"#.into())
    );
}

/// Headers are metadata under their canonical names, once each (the first value of a
/// repeated name), and a query parameter of the same name takes the header's place.
#[test]
fn each_header_is_metadata_once_under_its_canonical_name() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /h\n\
         pipeline:\n  processors:\n    - mapping: |\n        root = [metadata(\"X-Dup\"), metadata(\"X-Over\"), metadata(\"x-dup\"), @.keys().filter(k -> k.has_prefix(\"X-\")).sort(), @.values().length()]\n\
         output:\n  sync_response: {}\n",
    );
    let raw = "POST /h?X-Over=query HTTP/1.1\r\nHost: x\r\nx-dup: 1\r\nX-DUP: 2\r\nX-Over: header\r\nContent-Length: 0\r\n\r\n";
    let r = exchange(s.addr, raw.as_bytes());
    assert_eq!(r.status, 200);
    // Four fixed keys, Host, X-Dup, X-Over, Content-Length.
    assert_eq!(r.text(), r#"["1","query",null,["X-Dup","X-Over"],8]"#);
}

/// A later metadata write wins over the request's header of the same name in another
/// case, as in the order they were written: here in the response's headers.
#[test]
fn a_later_metadata_write_beats_the_request_header_in_response_headers() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /t\n\
         \x20   sync_response:\n      metadata_headers:\n        include_patterns: [ '(?i)^content-type$' ]\n\
         pipeline:\n  processors:\n    - mapping: |\n        meta \"content-type\" = \"text/plain\"\n        root = \"hi\"\n\
         output:\n  sync_response: {}\n",
    );
    let raw = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let r = exchange(s.addr, raw.as_bytes());
    assert_eq!((r.status, r.text()), (200, "hi".into()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

#[test]
fn path_params_query_headers_and_cookies_become_metadata() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /users/{id}\n\
         pipeline:\n  processors:\n    - mapping: |\n        root = [@id, @q, metadata(\"X-Trace\"), @session, @http_server_verb, @http_server_request_path]\n\
         output:\n  sync_response: {}\n",
    );
    let raw = "POST /users/a%20b?q=x+y HTTP/1.1\r\nHost: x\r\nx-trace: t1\r\nCookie: session=abc\r\nContent-Length: 0\r\n\r\n";
    let r = exchange(s.addr, raw.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        r#"["a b","x y","t1","abc","POST","/users/a%20b"]"#
    );
}
