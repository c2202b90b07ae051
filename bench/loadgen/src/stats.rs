//! What a run measured: per-thread tallies, their merge, the process's own CPU time,
//! and the two ways of printing it (a summary for people, one JSON object for scripts).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Percentiles of the latency curve in the JSON output (0 is the minimum, 100 the max).
pub const CURVE: [f64; 10] = [
    0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999, 100.0,
];

/// Latencies are recorded in nanoseconds, from 1 ns to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Failures, counted per event (a failed read loses every request in flight on it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Errors {
    /// A connect or WebSocket handshake failed (the connection is retried).
    pub connect: u64,
    /// Answers with a status outside 2xx (still counted as completed and timed).
    pub status: u64,
    /// A read failed, the server closed with requests in flight, or the answer did not
    /// parse.
    pub read: u64,
    pub write: u64,
    /// Requests with no answer within `--timeout` (their connection is reopened).
    pub timeout: u64,
}

impl Errors {
    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.status += o.status;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
    }

    fn total(&self) -> u64 {
        self.connect + self.status + self.read + self.write + self.timeout
    }
}

/// One thread's (or, merged, the whole run's) measurements over the measured window.
pub struct Tally {
    pub latency: Histogram<u64>,
    /// The same answers timed to when their bytes reached the client's socket (open
    /// loop: the kernel's receive stamp), leaving out the client's delay in reading
    /// them. Open loop only.
    pub arrival: Histogram<u64>,
    /// Open loop: the same answers from their request's write to the receive stamp:
    /// the server's (and loopback's) part, without the client's delays in sending and
    /// in reading. What separates a server's latency from its load generator's.
    pub round_trip: Histogram<u64>,
    /// Open loop: from each request's due time to its write: the client running late,
    /// or every connection busy.
    pub send_delay: Histogram<u64>,
    /// Open loop: answers left out of `arrival` and `round_trip` for want of a usable
    /// stamp (the first reads of a run, before the kernel has turned stamping on).
    pub unstamped: u64,
    /// Answers received for requests sent (open loop: due) inside the window.
    pub completed: u64,
    /// Every answer received, warm-up included: what the server's CPU time over the
    /// whole run is divided by.
    pub answers_total: u64,
    pub errors: Errors,
    /// CPU time the thread spent in the window, microseconds.
    pub user_us: u64,
    pub sys_us: u64,
    /// CPU time spent polling with nothing to do (`--spin`) in the window: what a
    /// sleeping client would not have spent.
    pub idle_poll_ns: u64,
    /// Open loop: requests due but not yet sent when the window closed.
    pub backlog: u64,
    /// Open loop: requests that were due inside the window.
    pub due: u64,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            latency: histogram(),
            arrival: histogram(),
            round_trip: histogram(),
            send_delay: histogram(),
            unstamped: 0,
            completed: 0,
            answers_total: 0,
            errors: Errors::default(),
            user_us: 0,
            sys_us: 0,
            idle_poll_ns: 0,
            backlog: 0,
            due: 0,
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.latency.add(&o.latency).expect("same histogram bounds");
        self.arrival.add(&o.arrival).expect("same histogram bounds");
        self.round_trip
            .add(&o.round_trip)
            .expect("same histogram bounds");
        self.send_delay
            .add(&o.send_delay)
            .expect("same histogram bounds");
        self.unstamped += o.unstamped;
        self.completed += o.completed;
        self.answers_total += o.answers_total;
        self.errors.add(&o.errors);
        self.user_us += o.user_us;
        self.sys_us += o.sys_us;
        self.idle_poll_ns += o.idle_poll_ns;
        self.backlog += o.backlog;
        self.due += o.due;
    }
}

/// This thread's (user, system) CPU time so far, microseconds (getrusage RUSAGE_THREAD).
pub fn thread_cpu_us() -> (u64, u64) {
    // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

/// This thread's CPU time so far, nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Clock `id` now, nanoseconds.
pub fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How the run was set up, for the report.
pub struct Setup<'a> {
    pub url: &'a str,
    pub ws: bool,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub rate: Option<f64>,
    pub duration: Duration,
    pub warmup: Duration,
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// A latency histogram's figures, microseconds.
fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "min": us(h.min()),
        "mean": (h.mean() / 100.0).round() / 10.0,
        "stdev": (h.stdev() / 100.0).round() / 10.0,
        "p50": us(h.value_at_percentile(50.0)),
        "p90": us(h.value_at_percentile(90.0)),
        "p99": us(h.value_at_percentile(99.0)),
        "p99_9": us(h.value_at_percentile(99.9)),
        "max": us(h.max()),
    })
}

/// The run as one JSON object (latencies in microseconds).
pub fn to_json(setup: &Setup, t: &Tally) -> Value {
    let secs = setup.duration.as_secs_f64();
    let h = &t.latency;
    let cpu_per_req = |us: u64| (t.completed > 0).then(|| us as f64 / t.completed as f64);
    let busy_us = (t.user_us + t.sys_us).saturating_sub(t.idle_poll_ns / 1000);
    let curve: Vec<Value> = CURVE
        .iter()
        .map(|&p| json!([p, us(h.value_at_percentile(p))]))
        .collect();
    json!({
        "url": setup.url,
        "protocol": if setup.ws { "ws" } else { "http" },
        "mode": if setup.rate.is_some() { "open" } else { "closed" },
        "connections": setup.connections,
        "threads": setup.threads,
        "pipeline": setup.pipeline,
        "target_rate": setup.rate,
        "duration_s": secs,
        "warmup_s": setup.warmup.as_secs_f64(),
        "requests": t.completed,
        "answers_total": t.answers_total,
        "rps": t.completed as f64 / secs,
        "backlog_at_end": t.backlog,
        "errors": {
            "connect": t.errors.connect,
            "status": t.errors.status,
            "read": t.errors.read,
            "write": t.errors.write,
            "timeout": t.errors.timeout,
        },
        "latency_us": summary(h),
        "arrival_latency_us": setup.rate.map(|_| summary(&t.arrival)),
        "arrival_unstamped": setup.rate.map(|_| t.unstamped),
        "round_trip_us": setup.rate.map(|_| summary(&t.round_trip)),
        "send_delay_us": setup.rate.map(|_| summary(&t.send_delay)),
        "percentiles_us": curve,
        "cpu": {
            "user_us": t.user_us,
            "sys_us": t.sys_us,
            "idle_poll_us": t.idle_poll_ns / 1000,
            "us_per_request": cpu_per_req(t.user_us + t.sys_us),
            "busy_us_per_request": cpu_per_req(busy_us),
        },
    })
}

/// The run as a few lines of text.
pub fn print_text(setup: &Setup, t: &Tally) {
    let secs = setup.duration.as_secs_f64();
    let mode = match setup.rate {
        Some(r) => format!("open loop at {r:.0} req/s"),
        None => "closed loop".to_string(),
    };
    let depth = if setup.pipeline > 1 {
        format!(", pipeline {}", setup.pipeline)
    } else {
        String::new()
    };
    println!(
        "{} ({}), {mode}, {} connections, {} threads{depth}, {:.1} s (+{:.1} s warm-up)",
        setup.url,
        if setup.ws { "WebSocket" } else { "HTTP/1.1" },
        setup.connections,
        setup.threads,
        secs,
        setup.warmup.as_secs_f64()
    );
    println!(
        "  requests  {} in {:.1} s: {:.0} req/s",
        t.completed,
        secs,
        t.completed as f64 / secs
    );
    if setup.rate.is_some() {
        println!(
            "  schedule  {} due, {} still queued at the end",
            t.due, t.backlog
        );
    }
    let line = |what: &str, h: &Histogram<u64>, from: &str| {
        println!(
            "  {what:<9} p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us ({from})",
            us(h.value_at_percentile(50.0)),
            us(h.value_at_percentile(90.0)),
            us(h.value_at_percentile(99.0)),
            us(h.value_at_percentile(99.9)),
            us(h.max()),
        )
    };
    if setup.rate.is_some() {
        line("latency", &t.latency, "from the intended send time");
        let left_out = match t.unstamped {
            0 => String::new(),
            n => format!("; {n} answers without a stamp left out"),
        };
        line(
            "arrival",
            &t.arrival,
            &format!("the same, to the kernel's receive stamp{left_out}"),
        );
        line(
            "send",
            &t.send_delay,
            "from the intended send time to the write",
        );
        line("trip", &t.round_trip, "from the write to the receive stamp");
    } else {
        line("latency", &t.latency, "from the write");
    }
    let e = &t.errors;
    println!(
        "  errors    {} (connect {}, status {}, read {}, write {}, timeout {})",
        e.total(),
        e.connect,
        e.status,
        e.read,
        e.write,
        e.timeout
    );
    if t.completed > 0 {
        let per = |us: u64| us as f64 / t.completed as f64;
        let cpu = t.user_us + t.sys_us;
        println!(
            "  own CPU   {:.2} us/request (user {:.2}, system {:.2}); {:.2} without the \
             {:.0} ms spent polling idle",
            per(cpu),
            per(t.user_us),
            per(t.sys_us),
            per(cpu.saturating_sub(t.idle_poll_ns / 1000)),
            t.idle_poll_ns as f64 / 1e6
        );
    }
}
