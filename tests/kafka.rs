//! The `kafka` output against a real broker (tansu, one per test, on loopback): what a
//! client is answered matches what is in the topic, read back with rskafka; outages
//! never answer 200 and recovery is quick; partitions, headers and codecs as
//! configured. Every test is bounded in requests and time.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use rskafka::BackoffConfig;

use support::tansu::Tansu;
use support::{connect, Reader, Sluice};

/// A sluice whose `/weather` answers with the forecast once `kafka_output` (a YAML
/// block, indented for a broker's outputs list) has acked.
fn weather(kafka_output: &str, timeout: &str) -> Sluice {
    Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\n\
         input:\n  http_server:\n    path: /weather\n    timeout: {timeout}\n\
         pipeline:\n  processors:\n    - mapping: |\n        \
         root.city = this.location\n        \
         root.forecast = \"Clear skies with light winds\"\n        \
         root.temperature_c = 22\n\
         output:\n  broker:\n    pattern: fan_out\n    outputs:\n{kafka_output}      \
         - sync_response: {{}}\n\
         logger:\n  level: DEBUG\n"
    ))
}

/// POSTs `body` on the connection and returns the status (0 if the connection failed).
fn post(
    conn: &mut std::net::TcpStream,
    reader: &mut Reader<std::net::TcpStream>,
    body: &str,
) -> u16 {
    let head = format!(
        "POST /weather HTTP/1.1\r\nHost: x\r\nX-Trace: t-1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body.as_bytes()).is_err() {
        return 0;
    }
    reader.response(false).map_or(0, |r| r.status)
}

/// Sends `per_thread` requests from each of `threads` keep-alive connections at once;
/// returns every (city, status).
fn load(addr: SocketAddr, threads: usize, per_thread: usize, tag: &str) -> Vec<(String, u16)> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let tag = tag.to_string();
            std::thread::spawn(move || {
                let mut conn = connect(addr);
                let mut reader = Reader::new(conn.try_clone().unwrap());
                (0..per_thread)
                    .map(|i| {
                        let city = format!("{tag}-{t}-{i}");
                        let status = post(
                            &mut conn,
                            &mut reader,
                            &format!("{{\"location\":\"{city}\"}}"),
                        );
                        (city, status)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// A record read back, with its partition.
struct Got {
    partition: i32,
    record: Record,
}

impl Got {
    fn city(&self) -> String {
        let v = self.record.value.as_deref().unwrap_or_default();
        let doc: serde_json::Value = serde_json::from_slice(v).unwrap();
        doc["city"].as_str().unwrap().to_string()
    }
}

/// Every record of `topic`, read with rskafka up to each partition's high watermark as
/// a fetch reports it (tansu's "latest offset" is wrong after multi-record batches).
fn read_topic(broker: &str, topic: &str) -> Vec<Got> {
    read_topic_with(broker, topic, None)
}

/// [`read_topic`] over TLS when `tls` is set.
fn read_topic_with(broker: &str, topic: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Vec<Got> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let work = async {
            let mut builder =
                ClientBuilder::new(vec![broker.to_string()]).backoff_config(BackoffConfig {
                    deadline: Some(Duration::from_secs(5)),
                    ..Default::default()
                });
            if let Some(tls) = tls {
                builder = builder.tls_config(tls);
            }
            let client = builder.build().await.unwrap();
            let topics = client.list_topics().await.unwrap();
            let Some(t) = topics.into_iter().find(|t| t.name == topic) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for p in t.partitions {
                let pc = client
                    .partition_client(topic, p, UnknownTopicHandling::Retry)
                    .await
                    .unwrap();
                let mut offset = 0;
                loop {
                    let (records, high_watermark) =
                        pc.fetch_records(offset, 1..10_000_000, 100).await.unwrap();
                    for r in records {
                        if r.offset >= offset {
                            offset = r.offset + 1;
                            out.push(Got {
                                partition: p,
                                record: r.record,
                            });
                        }
                    }
                    if offset >= high_watermark {
                        break;
                    }
                }
            }
            out
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .expect("reading the topic back took over 30s")
    })
}

/// Produce requests and records, from the DEBUG lines the batcher logs, reading until
/// `expected` records are counted (or 10 s pass): the lines are written before each
/// produce, but the thread that reads sluice's stderr may still be behind.
fn records_per_produce(s: &Sluice, expected: usize) -> (usize, usize) {
    let (mut requests, mut records) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while records < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = s.logs.recv_timeout(left) else {
            break;
        };
        if line.contains("msg=\"kafka produce\"") {
            requests += 1;
            records += line
                .split("records=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.trim_matches('"').parse::<usize>().ok())
                .unwrap_or(0);
        }
    }
    (requests, records)
}

fn kafka_block(address: &str, extra: &str) -> String {
    format!("      - kafka:\n          addresses: [ {address} ]\n          topic: weather\n{extra}")
}

#[test]
fn every_request_answered_200_is_in_the_topic() {
    let broker = Tansu::start();
    let s = weather(&kafka_block(&broker.address(), ""), "10s");
    let results = load(s.addr, 16, 40, "load");
    let ok: BTreeSet<String> = results
        .iter()
        .filter(|(_, st)| *st == 200)
        .map(|(c, _)| c.clone())
        .collect();
    assert_eq!(
        ok.len(),
        640,
        "all requests should succeed with a healthy broker"
    );
    let got = read_topic(&broker.address(), "weather");
    let in_topic: Vec<String> = got.iter().map(Got::city).collect();
    let unique: BTreeSet<String> = in_topic.iter().cloned().collect();
    assert!(
        ok.is_subset(&unique),
        "missing: {:?}",
        ok.difference(&unique).take(5).collect::<Vec<_>>()
    );
    assert_eq!(in_topic.len(), 640, "no duplicates with a healthy broker");
    let (requests, records) = records_per_produce(&s, 640);
    assert_eq!(records, 640);
    eprintln!(
        "16 concurrent connections: {records} records in {requests} produce requests ({:.1} per request)",
        records as f64 / requests.max(1) as f64
    );
    assert!(
        requests < records,
        "concurrent requests should share produce requests"
    );
    // /metrics counts the same produce requests as the output's batches.
    let metrics = ureq::get(&s.url("/metrics")).call().unwrap();
    let metrics = metrics.into_string().unwrap();
    let batches =
        format!("output_batch_sent{{label=\"\",path=\"root.output.outputs.0\"}} {requests}\n");
    assert!(metrics.contains(&batches), "{batches} not in\n{metrics}");
}

#[test]
fn broker_outage_gives_no_200_and_restart_recovers() {
    let mut broker = Tansu::start();
    // A short produce timeout, so requests made during the outage settle (502) or
    // expire (408) well inside it.
    let s = weather(
        &kafka_block(&broker.address(), "          timeout: 500ms\n"),
        "1s",
    );
    let addr = s.addr;
    // Warm up until the topic exists and the client is connected: the first request
    // pays for both, which on a slow machine can outlast its 500 ms produce timeout.
    let warm = Instant::now();
    while !load(addr, 1, 3, "warm").iter().all(|(_, st)| *st == 200) {
        assert!(
            warm.elapsed() < Duration::from_secs(20),
            "no three 200s within 20 s of start"
        );
    }

    // (city, status, started, finished) of every request the load threads make.
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conn = connect(addr);
                let mut reader = Reader::new(conn.try_clone().unwrap());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 2000 {
                    let city = format!("live-{t}-{i}");
                    let started = Instant::now();
                    let status = post(
                        &mut conn,
                        &mut reader,
                        &format!("{{\"location\":\"{city}\"}}"),
                    );
                    log.lock()
                        .unwrap()
                        .push((city, status, started, Instant::now()));
                    if status == 0 {
                        conn = connect(addr);
                        reader = Reader::new(conn.try_clone().unwrap());
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    broker.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let up_begin = Instant::now();
    broker.restart();
    let up = Instant::now();
    // Recovery: some request that started after the restart succeeds within seconds.
    let recovered = loop {
        let first_ok = log
            .lock()
            .unwrap()
            .iter()
            .find(|(_, st, started, _)| *st == 200 && *started >= up)
            .map(|(_, _, _, finished)| *finished);
        if let Some(t) = first_ok {
            break t;
        }
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "no 200 within 10s of the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    eprintln!("first 200 after restart: {:?}", recovered - up);

    let log = log.lock().unwrap();
    let during: Vec<_> = log
        .iter()
        .filter(|(_, _, started, finished)| *started >= down && *finished <= up_begin)
        .collect();
    assert!(!during.is_empty(), "requests were made during the outage");
    for (city, status, _, _) in &during {
        assert_ne!(
            *status, 200,
            "{city} answered 200 while the broker was down"
        );
        assert!(matches!(status, 408 | 502), "{city}: {status}");
    }
    // The restarted broker kept nothing (memory storage): every 200 for a request made
    // after the outage began must be there.
    let after: BTreeSet<String> = log
        .iter()
        .filter(|(_, st, started, _)| *st == 200 && *started >= down)
        .map(|(c, ..)| c.clone())
        .collect();
    assert!(!after.is_empty());
    let got: BTreeSet<String> = read_topic(&broker.address(), "weather")
        .iter()
        .map(Got::city)
        .collect();
    let missing: Vec<_> = after.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "answered 200 but not in the topic: {missing:?}"
    );
}

#[test]
fn murmur2_partitions_match_the_java_client() {
    let broker = Tansu::start();
    let s = weather(
        &kafka_block(
            &broker.address(),
            "          key: ${! this.city }\n          partitioner: murmur2_hash\n",
        ),
        "10s",
    );
    // Java: Utils.toPositive(Utils.murmur2(key)) % 4, from the Java client's own murmur2
    // vectors (UtilsTest.testMurmur2); tansu auto-creates the topic with 4 partitions.
    let java: BTreeMap<&str, i32> = [
        ("21", 0),
        ("foobar", 2),
        ("abc", 3),
        ("a-little-bit-long-string", 0),
        ("a-little-bit-longer-string", 3),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 1),
    ]
    .into();
    let mut conn = s.connect();
    let mut reader = Reader::new(conn.try_clone().unwrap());
    for key in java.keys() {
        assert_eq!(
            post(
                &mut conn,
                &mut reader,
                &format!("{{\"location\":\"{key}\"}}")
            ),
            200
        );
    }
    let got = read_topic(&broker.address(), "weather");
    assert_eq!(got.len(), java.len());
    for g in &got {
        let key = String::from_utf8(g.record.key.clone().unwrap()).unwrap();
        assert_eq!(g.partition, java[key.as_str()], "key {key}");
    }
}

#[test]
fn metadata_arrive_as_record_headers() {
    let broker = Tansu::start();
    let s = Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\n\
         input:\n  http_server:\n    path: /weather\n\
         pipeline:\n  processors:\n    - mutation: |\n        meta city = this.location\n        meta skip_me = \"x\"\n\
         output:\n  broker:\n    outputs:\n\
         {}      - sync_response: {{}}\n",
        kafka_block(
            &broker.address(),
            "          static_headers: { origin: sluice }\n          metadata:\n            exclude_prefixes: [ skip_ ]\n"
        )
    ));
    let mut conn = s.connect();
    let mut reader = Reader::new(conn.try_clone().unwrap());
    assert_eq!(post(&mut conn, &mut reader, "{\"location\":\"Oslo\"}"), 200);
    let got = read_topic(&broker.address(), "weather");
    assert_eq!(got.len(), 1);
    let h = &got[0].record.headers;
    assert_eq!(
        h.get("city").map(Vec::as_slice),
        Some(&b"Oslo"[..]),
        "{h:?}"
    );
    assert_eq!(h.get("origin").map(Vec::as_slice), Some(&b"sluice"[..]));
    assert!(!h.contains_key("skip_me"), "{h:?}");
    // Request headers are metadata too (upstream's http_server puts them there).
    assert!(h.values().any(|v| v == b"t-1"), "{h:?}");
}

#[test]
fn every_compression_codec_round_trips() {
    let broker = Tansu::start();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let outputs: String = codecs
        .iter()
        .map(|c| {
            format!(
                "      - kafka:\n          addresses: [ {} ]\n          topic: codec-{c}\n          compression: {c}\n",
                broker.address()
            )
        })
        .collect();
    let s = weather(&outputs, "10s");
    let results = load(s.addr, 4, 5, "codec");
    assert!(results.iter().all(|(_, st)| *st == 200), "{results:?}");
    let sent: BTreeSet<String> = results.into_iter().map(|(c, _)| c).collect();
    for c in codecs {
        let got: BTreeSet<String> = read_topic(&broker.address(), &format!("codec-{c}"))
            .iter()
            .map(Got::city)
            .collect();
        assert_eq!(got, sent, "codec {c}");
    }
}

#[test]
fn unreachable_broker_nacks_with_502() {
    // Nothing listens on this port: the output must fail, never answer 200.
    let port = support::tansu::free_port();
    let s = Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\n\
         input:\n  http_server:\n    path: /weather\n    timeout: 5s\n\
         output:\n  kafka:\n    addresses: [ 127.0.0.1:{port} ]\n    topic: weather\n    timeout: 300ms\n    max_retries: 1\n    backoff: {{ initial_interval: 10ms }}\n"
    ));
    let mut conn = s.connect();
    let mut reader = Reader::new(conn.try_clone().unwrap());
    let started = Instant::now();
    assert_eq!(
        post(&mut conn, &mut reader, "{\"location\":\"Nowhere\"}"),
        502
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// `/ready` with its body: 200, or upstream's 503 with a JSON reason.
fn ready(s: &Sluice) -> (u16, String) {
    let r = support::exchange(s.addr, b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    (r.status, r.text())
}

#[test]
fn ready_answers_503_until_the_kafka_output_reaches_a_broker() {
    // Installed before the port is picked: it is free only until tansu binds it.
    support::tansu::binary();
    let port = support::tansu::free_port();
    let s = weather(&kafka_block(&format!("127.0.0.1:{port}"), ""), "10s");
    assert_eq!(
        ready(&s),
        (503, r#"{"error":"output not connected"}"#.to_string())
    );
    let _broker = Tansu::start_advertising(port, port);
    // The output connects on its own, without a request to make it.
    let started = Instant::now();
    while ready(&s).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still not ready: {:?}",
            ready(&s)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(load(s.addr, 1, 2, "ready").iter().all(|(_, st)| *st == 200));
}

/// Terminates TLS on `listener` and relays each connection's bytes to `upstream` in
/// plain TCP (tansu's own TLS listener does not handshake in this build). Threads end
/// with their connections; the accept loop ends with the test process.
fn tls_proxy(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) {
    use std::io::{ErrorKind, Read};
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { break };
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(mut up) = std::net::TcpStream::connect(upstream) else {
                    return;
                };
                // Short read timeouts let one thread pump both directions.
                let tick = Some(Duration::from_millis(2));
                tcp.set_read_timeout(tick).unwrap();
                up.set_read_timeout(tick).unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = vec![0u8; 64 * 1024];
                let idle = |e: &std::io::Error| {
                    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                };
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if up.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => break,
                    }
                    match up.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                                break;
                            }
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => break,
                    }
                }
            });
        }
    });
}

#[test]
fn tls_to_the_broker_with_a_private_ca() {
    // A self-signed certificate for 127.0.0.1, trusted through root_cas_file.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = support::TempDir::new();
    let ca_file = dir.file("ca.pem", &cert.cert.pem());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front_port = front.local_addr().unwrap().port();
    let broker = Tansu::start_advertising(support::tansu::free_port(), front_port);
    tls_proxy(front, broker.address().parse().unwrap(), Arc::new(server));

    let tls = format!(
        "          tls:\n            enabled: true\n            root_cas_file: {}\n",
        ca_file.display()
    );
    let s = weather(
        &kafka_block(&format!("127.0.0.1:{front_port}"), &tls),
        "10s",
    );
    let results = load(s.addr, 2, 5, "tls");
    assert!(results.iter().all(|(_, st)| *st == 200), "{results:?}");
    let sent: BTreeSet<String> = results.into_iter().map(|(c, _)| c).collect();
    // Read back through the proxy too (the broker advertises it), trusting the CA.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let got: BTreeSet<String> = read_topic_with(
        &format!("127.0.0.1:{front_port}"),
        "weather",
        Some(Arc::new(client)),
    )
    .iter()
    .map(Got::city)
    .collect();
    assert_eq!(got, sent);

    // Trusting another CA, the handshake fails: a nack, never a 200.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let other_file = dir.file("other.pem", &other.cert.pem());
    let untrusted = weather(
        &kafka_block(
            &format!("127.0.0.1:{front_port}"),
            &format!(
                "          timeout: 500ms\n          max_retries: 1\n          \
                 backoff: {{ initial_interval: 10ms }}\n          \
                 tls: {{ enabled: true, root_cas_file: {} }}\n",
                other_file.display()
            ),
        ),
        "1s",
    );
    let statuses = load(untrusted.addr, 1, 2, "untrusted");
    assert!(
        statuses.iter().all(|(_, st)| matches!(st, 408 | 502)),
        "{statuses:?}"
    );
}

/// The seed's proxy + Kafka example: the client gets the upstream's body, and the
/// request is in the topic.
#[test]
fn fan_out_to_kafka_and_http_client_answers_with_the_upstream_body() {
    use support::upstream::{Reply, Upstream};
    let broker = Tansu::start();
    let up = Upstream::start(|req, _| {
        let city: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        Reply::Send(
            200,
            vec![],
            format!("forecast for {}", city["location"].as_str().unwrap()).into_bytes(),
        )
    });
    let yaml = std::fs::read_to_string("config/proxy-weather-kafka.yaml").unwrap();
    let s = Sluice::start_with(
        &yaml,
        &[
            "--set",
            "http.address=127.0.0.1:0",
            "--set",
            "runtime.shards=1",
            "--set",
            &format!(
                "output.broker.outputs.0.kafka.addresses=[{}]",
                broker.address()
            ),
            "--set",
            &format!(
                "output.broker.outputs.1.http_client.url={}",
                up.url("/forecast")
            ),
        ],
    );
    for city in ["Berlin", "Oslo", "Rome"] {
        let body = format!(r#"{{"location":"{city}"}}"#);
        let raw = format!(
            "POST /weather HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = support::exchange(s.addr, raw.as_bytes());
        assert_eq!((r.status, r.text()), (200, format!("forecast for {city}")));
    }
    let got = read_topic(&broker.address(), "weather");
    let mut in_topic: Vec<String> = got
        .iter()
        .map(|g| {
            let v: serde_json::Value =
                serde_json::from_slice(g.record.value.as_deref().unwrap()).unwrap();
            v["location"].as_str().unwrap().to_string()
        })
        .collect();
    in_topic.sort();
    assert_eq!(in_topic, ["Berlin", "Oslo", "Rome"]);
}
