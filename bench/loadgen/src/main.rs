//! loadgen: the load generator of sluice's benchmarks (`bench/run.sh`). HTTP/1.1
//! keep-alive requests or WebSocket round trips over N connections, closed loop (as
//! fast as answers come back) or open loop (a fixed rate, latency measured from each
//! request's due time), with HDR latency histograms and its own CPU time per request.
//! `loadgen report RESULTS.json` turns a `bench/run.sh` results file into Markdown and
//! SVG charts; `loadgen pool RESULTS.json...` takes the paired slices of several runs
//! together.
//!
//! # Layout
//!
//! - `main.rs`: the command line, the pre-flight connect, threads, the merged output.
//! - `engine.rs`: one thread's event loop (connections, schedule, timing).
//! - `epoll.rs`: edge-triggered epoll with nanosecond waits.
//! - `http.rs`: request bytes and the incremental response parser.
//! - `ws.rs`: the RFC 6455 handshake, masked frames out, frame parser.
//! - `stats.rs`: tallies, merge, text and JSON output.
//! - `report.rs`: results file to Markdown table and SVG charts.
//! - `pool.rs`: paired slices of several results files, with bootstrap intervals.

mod engine;
mod epoll;
mod http;
mod pool;
mod report;
mod rxstamp;
mod stats;
mod ws;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::Duration;

use clap::Parser;

use engine::{Plan, Protocol};
use stats::{Setup, Tally};

/// Load generator for HTTP/1.1 and WebSocket servers: closed loop (max throughput) or
/// open loop (`--rate`, latency from each request's intended send time).
///
/// Also: `loadgen report RESULTS.json` writes RESULTS.md, RESULTS-throughput.svg and
/// RESULTS-latency.svg from a bench/run.sh results file; `loadgen pool RESULTS.json...`
/// prints the paired slices of several runs taken together.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
struct Cli {
    /// `http://HOST:PORT/path`, or `ws://HOST:PORT/path` for WebSocket round trips.
    url: String,
    /// Connections, kept open (keep-alive) for the whole run.
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Threads, each with its own event loop and share of the connections.
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// How long to measure (`10s`, `500ms`, `1m`).
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load applied before measuring starts, not counted.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open loop: requests per second in total, on a fixed schedule.
    #[arg(short = 'R', long)]
    rate: Option<f64>,
    /// Poll this long for events before sleeping (open loop: also this close to each
    /// due time), yielding the CPU between polls; `0` sleeps at once.
    #[arg(long, default_value = "100us", value_parser = parse_duration)]
    spin: Duration,
    /// Requests written together in one write per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Request method (default: POST with a body, GET without).
    #[arg(short = 'm', long)]
    method: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body (WebSocket: each message's text).
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the request body from a file.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// WebSocket: handshake, then one text message per request, one answer message per
    /// round trip (implied by a ws:// URL).
    #[arg(long)]
    ws: bool,
    /// An answer slower than this counts as a timeout and its connection is reopened.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).is_some_and(|a| a == "report") {
        report::main(&args[2..])
    } else if args.get(1).is_some_and(|a| a == "pool") {
        pool::main(&args[2..])
    } else {
        run(Cli::parse())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `10s`, `250ms`, `100us`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 10s or 500ms)"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("{s:?}: {e}"))
}

/// The parts of the URL a request needs.
struct Target {
    ws: bool,
    /// `host:port` as written, for `Host` and messages.
    authority: String,
    path: String,
    addr: SocketAddr,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (ws, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (true, r)
    } else {
        return Err(format!(
            "{url}: only http:// and ws:// URLs are supported (no TLS)"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    Ok(Target {
        ws,
        authority: authority.to_string(),
        path: path.to_string(),
        addr,
    })
}

fn parse_header(h: &str) -> Result<(String, String), String> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn run(cli: Cli) -> Result<(), String> {
    let target = parse_url(&cli.url)?;
    if cli.ws && !target.ws {
        return Err("--ws needs a ws:// URL".into());
    }
    let ws = target.ws;
    if cli.connections == 0 || cli.threads == 0 || cli.pipeline == 0 {
        return Err("--connections, --threads and --pipeline must be at least 1".into());
    }
    if cli.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of requests per second".into());
    }
    if cli.duration.is_zero() {
        return Err("--duration must be more than 0".into());
    }
    let headers = cli
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let body = match (&cli.body, &cli.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(p)) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        (None, None) => Vec::new(),
    };

    // Fail fast and clearly when nothing listens (or the upgrade is refused).
    let mut probe =
        TcpStream::connect_timeout(&target.addr, Duration::from_secs(2)).map_err(|e| {
            format!(
                "cannot connect to {} ({}): {e}",
                target.authority, target.addr
            )
        })?;
    if ws {
        ws::handshake(
            &mut probe,
            &target.authority,
            &target.path,
            &headers,
            Duration::from_secs(2),
        )
        .map_err(|e| format!("{}: {e}", cli.url))?;
    }
    drop(probe);

    let protocol = if ws {
        Protocol::Ws {
            host: target.authority.clone(),
            path: target.path.clone(),
            headers,
            payload: body,
        }
    } else {
        let method = cli
            .method
            .clone()
            .unwrap_or_else(|| if body.is_empty() { "GET" } else { "POST" }.to_string());
        Protocol::Http {
            request: http::encode_request(
                &method,
                &target.authority,
                &target.path,
                &headers,
                &body,
            ),
            head: method.eq_ignore_ascii_case("HEAD"),
        }
    };
    let threads = cli.threads.min(cli.connections);
    let plan = Plan {
        addr: target.addr,
        protocol,
        pipeline: cli.pipeline,
        rate: cli.rate,
        threads,
        warmup: cli.warmup,
        duration: cli.duration,
        timeout: cli.timeout,
        spin: cli.spin,
    };
    let barrier = Barrier::new(threads);
    let tallies: Vec<std::io::Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let conns = cli.connections / threads + usize::from(t < cli.connections % threads);
                let (plan, barrier) = (&plan, &barrier);
                scope.spawn(move || {
                    engine::run(plan, t, conns, || {
                        barrier.wait();
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread panicked"))
            .collect()
    });
    let mut total = Tally::new();
    for t in tallies {
        total.merge(&t.map_err(|e| format!("event loop: {e}"))?);
    }

    let setup = Setup {
        url: &cli.url,
        ws,
        connections: cli.connections,
        threads,
        pipeline: cli.pipeline,
        rate: cli.rate,
        duration: cli.duration,
        warmup: cli.warmup,
    };
    if cli.json {
        println!("{}", stats::to_json(&setup, &total));
    } else {
        stats::print_text(&setup, &total);
    }
    if total.completed == 0 {
        return Err(format!("no request completed ({:?})", total.errors));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:4195/ws").unwrap();
        assert!(t.ws);
        assert_eq!(t.path, "/ws");
        assert_eq!(t.addr, "127.0.0.1:4195".parse().unwrap());
        let t = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((t.path.as_str(), t.addr.port()), ("/", 80));
        assert!(parse_url("https://127.0.0.1/").is_err());
    }
}
