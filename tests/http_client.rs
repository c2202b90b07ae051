//! The `http_client` output against real upstream servers started by the tests:
//! propagated answers, interpolated headers, connection reuse, error statuses, stalls,
//! and connections that die mid-response.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::upstream::{Reply, Upstream};
use support::{exchange, Response, Sluice};

fn proxy(upstream: &Upstream, input_extra: &str, client_extra: &str) -> Sluice {
    Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n{input_extra}\
         output:\n  http_client:\n    url: {}\n    verb: POST\n    propagate_response: true\n{client_extra}",
        upstream.url("/forecast")
    ))
}

fn post(s: &Sluice, body: &str) -> Response {
    let raw = format!(
        "POST /p HTTP/1.1\r\nHost: x\r\nX-Trace: t-42\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(s.addr, raw.as_bytes())
}

#[test]
fn upstream_answer_comes_back_with_interpolated_headers() {
    let up = Upstream::start(|req, _| {
        let body = format!(
            "city={} trace={} method={} path={}",
            String::from_utf8_lossy(&req.body),
            req.header("x-trace").unwrap_or("-"),
            req.method,
            req.target
        );
        Reply::Chunked(200, body.into_bytes())
    });
    let s = proxy(
        &up,
        "",
        "    headers:\n      X-Trace: ${! meta(\"X-Trace\") }\n      Content-Type: text/plain\n",
    );
    let r = post(&s, "Berlin");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "city=Berlin trace=t-42 method=POST path=/forecast"
    );
}

#[test]
fn sequential_requests_reuse_a_few_connections() {
    let up = Upstream::start(|_, n| Reply::Send(200, vec![], format!("n{n}").into_bytes()));
    // Far more requests than max_in_flight: each must give its slot back.
    let s = proxy(&up, "", "    max_in_flight: 4\n");
    for i in 1..=50 {
        let r = post(&s, "x");
        assert_eq!((r.status, r.text()), (200, format!("n{i}")));
    }
    let conns = up.connections.load(Ordering::Relaxed);
    assert!(conns <= 3, "{conns} upstream connections for 50 requests");
}

#[test]
fn upstream_error_answers_502_with_its_status_and_body() {
    let up = Upstream::start(|_, _| Reply::Send(500, vec![], b"database is down".to_vec()));
    let s = proxy(&up, "", "    retries: 2\n    retry_period: 10ms\n");
    let r = post(&s, "x");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.text(),
        "HTTP request returned unexpected response code (500): 500 Status500, Error: database is down\n"
    );
    // First try plus two retries.
    assert_eq!(up.requests.load(Ordering::Relaxed), 3);
}

#[test]
fn upstream_status_passes_through_when_configured() {
    let up = Upstream::start(|_, _| {
        Reply::Send(
            201,
            vec![("X-Request-Id".into(), "abc".into())],
            b"created".to_vec(),
        )
    });
    let s = proxy(
        &up,
        "    sync_response:\n      status: ${! @http_status_code }\n      headers:\n        X-Upstream-Id: ${! meta(\"x-request-id\") }\n",
        "    extract_headers:\n      include_prefixes: [ x-request ]\n",
    );
    let r = post(&s, "x");
    assert_eq!((r.status, r.text()), (201, "created".to_string()));
    assert_eq!(r.header("x-upstream-id"), Some("abc"));
}

#[test]
fn a_stalled_upstream_is_retried_then_answers_502_without_hanging() {
    let up = Upstream::start(|_, _| Reply::Stall(Duration::from_secs(3)));
    let s = proxy(
        &up,
        "    timeout: 5s\n",
        "    timeout: 200ms\n    retries: 1\n    retry_period: 10ms\n",
    );
    let started = Instant::now();
    let r = post(&s, "x");
    let took = started.elapsed();
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("timed out"), "{}", r.text());
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The upstream counts a request once its handler thread has read it, which on a
    // loaded machine may come after sluice gave up on it.
    let counted = Instant::now();
    while up.requests.load(Ordering::Relaxed) < 2 && counted.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        2,
        "one try and one retry"
    );

    // With a request deadline shorter than the retries, the client gets 408 on time.
    let s = proxy(
        &up,
        "    timeout: 300ms\n",
        "    timeout: 200ms\n    retries: 5\n    retry_period: 10ms\n",
    );
    let started = Instant::now();
    assert_eq!(post(&s, "x").status, 408);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn a_connection_closed_mid_response_is_retried() {
    let up = Upstream::start(|_, n| {
        if n == 1 {
            Reply::CloseMidResponse
        } else {
            Reply::Send(200, vec![], b"second try".to_vec())
        }
    });
    let s = proxy(&up, "", "    retry_period: 10ms\n");
    let r = post(&s, "x");
    assert_eq!((r.status, r.text()), (200, "second try".to_string()));
    assert_eq!(up.requests.load(Ordering::Relaxed), 2);
}

#[test]
fn redirects_are_followed() {
    let up = Upstream::start(|req, _| {
        if req.target == "/forecast" {
            Reply::Send(307, vec![("Location".into(), "/moved".into())], vec![])
        } else {
            Reply::Send(
                200,
                vec![],
                format!(
                    "at {} with {}",
                    req.target,
                    String::from_utf8_lossy(&req.body)
                )
                .into_bytes(),
            )
        }
    });
    let s = proxy(&up, "", "");
    assert_eq!(post(&s, "body").text(), "at /moved with body");
}

/// An HTTPS upstream whose certificate is signed by a private CA: trusted through
/// `tls.root_cas_file`, refused without it.
#[test]
fn https_upstream_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use std::sync::Arc;

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    let up = Upstream::start_tls(
        |req, _| {
            Reply::Send(
                200,
                vec![],
                format!("secure {}", String::from_utf8_lossy(&req.body)).into_bytes(),
            )
        },
        Arc::new(config),
    );
    let dir = support::TempDir::new();
    let ca_file = dir.file("ca.pem", &ca_cert.pem());
    let url = format!("https://localhost:{}/forecast", up.addr.port());

    let s = Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n\
         output:\n  http_client:\n    url: {url}\n    propagate_response: true\n    retries: 0\n\
         \x20   tls:\n      enabled: true\n      root_cas_file: {}\n",
        ca_file.display()
    ));
    let r = post(&s, "hello");
    assert_eq!((r.status, r.text()), (200, "secure hello".to_string()));

    // Without the CA the certificate is not trusted: 502 with the handshake error.
    let s = Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n\
         output:\n  http_client:\n    url: {url}\n    propagate_response: true\n    retries: 0\n"
    ));
    let r = post(&s, "hello");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("TLS handshake"), "{}", r.text());
}

/// The `_sum` of latency histogram `family` for the component at `path`, in ns.
fn latency_sum(metrics: &str, family: &str, path: &str) -> u64 {
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{family}_latency_ns_sum{{")) && l.contains(path))
        .unwrap_or_else(|| panic!("no {family} latency for {path} in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn latency_metrics_put_the_upstream_wait_on_the_output_and_input() {
    let up = Upstream::start(|_, _| {
        std::thread::sleep(Duration::from_millis(100));
        Reply::Send(200, vec![], b"ok".to_vec())
    });
    let s = proxy(
        &up,
        "pipeline:\n  processors:\n    - mapping: root = this\n",
        "",
    );
    assert_eq!(post(&s, r#"{"a":1}"#).status, 200);
    let m = exchange(s.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").text();
    let waited = Duration::from_millis(100).as_nanos() as u64;
    let processor = latency_sum(&m, "processor", "path=\"root.pipeline.processors.0\"");
    let output = latency_sum(&m, "output", "path=\"root.output\"");
    let input = latency_sum(&m, "input", "path=\"root.input\"");
    assert!(processor < waited / 2, "processor {processor} ns");
    assert!(output >= waited, "output {output} ns");
    assert!(input >= output + processor, "input {input} ns");
}
