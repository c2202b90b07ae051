//! Metrics counted per shard without locks and summed when `/metrics` is scraped, in
//! Prometheus text format with upstream's names (`input_received`, `output_sent`, ...).
//!
//! Each component of each shard owns a [`ComponentMetrics`]; only that shard writes it
//! (a plain load + store, no read-modify-write), any shard may read it. The registry
//! that lists them is written once per shard at start-up.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Latency histogram bucket bounds in nanoseconds (Prometheus `le`).
const BUCKETS_NS: [u64; 12] = [
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    50_000_000,
    250_000_000,
    1_000_000_000,
];

/// A counter written by one thread only.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store are enough and avoid a locked instruction.
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency timing: count, sum and cumulative-at-scrape buckets.
#[derive(Default, Debug)]
pub struct Timing {
    count: Counter,
    sum_ns: Counter,
    buckets: [Counter; BUCKETS_NS.len()],
}

impl Timing {
    pub fn record(&self, d: Duration) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.count.add(1);
        self.sum_ns.add(ns);
        if let Some(i) = BUCKETS_NS.iter().position(|&b| ns <= b) {
            self.buckets[i].add(1);
        }
    }
}

/// One request's clock for its latency metrics. Each reading ends one span and starts
/// the next, so a request through n timed components reads the clock n + 1 times, not
/// 2n (on VMs a clock read is tens of nanoseconds). A component's span starts at the
/// request's latest reading, which is when the previous component finished.
pub struct Stopwatch(Cell<Instant>);

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch(Cell::new(Instant::now()))
    }

    /// The latest reading: where the next span starts.
    pub fn last(&self) -> Instant {
        self.0.get()
    }

    /// Reads the clock: the end of the current span and the start of the next.
    pub fn lap(&self) -> Instant {
        let now = Instant::now();
        self.0.set(now);
        now
    }
}

/// What kind of component a metrics block belongs to (sets the metric name prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Input,
    Processor,
    Output,
}

impl Family {
    fn prefix(self) -> &'static str {
        match self {
            Family::Input => "input",
            Family::Processor => "processor",
            Family::Output => "output",
        }
    }
}

/// The counters of one component on one shard.
#[derive(Debug, Default)]
pub struct ComponentMetrics {
    /// `input_received`, `processor_received`, `output_sent`.
    pub count: Counter,
    /// `processor_error`, `output_error` (unused for inputs).
    pub error: Counter,
    /// `output_batch_sent`: batches delivered (Kafka: produce requests acked).
    pub batches: Counter,
    /// `*_latency_ns`.
    pub latency: Timing,
}

struct Entry {
    family: Family,
    label: String,
    path: String,
    metrics: Arc<ComponentMetrics>,
}

/// Every component's metrics on every shard; written at start-up, read at scrape.
#[derive(Default, Clone)]
pub struct Registry {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Registry {
    /// Registers one component of one shard; the shard keeps the returned handle.
    pub fn register(&self, family: Family, label: &str, path: &str) -> Arc<ComponentMetrics> {
        let metrics = Arc::new(ComponentMetrics::default());
        self.entries
            .lock()
            .expect("metrics registry poisoned")
            .push(Entry {
                family,
                label: label.to_string(),
                path: path.to_string(),
                metrics: metrics.clone(),
            });
        metrics
    }

    /// Prometheus text exposition (version 0.0.4), shards summed per label and path.
    pub fn render(&self) -> String {
        struct Sum {
            family: Family,
            label: String,
            path: String,
            count: u64,
            error: u64,
            batches: u64,
            lat_count: u64,
            lat_sum: u64,
            buckets: [u64; BUCKETS_NS.len()],
        }
        let mut sums: Vec<Sum> = Vec::new();
        for e in self
            .entries
            .lock()
            .expect("metrics registry poisoned")
            .iter()
        {
            let i = match sums
                .iter()
                .position(|s| s.family == e.family && s.label == e.label && s.path == e.path)
            {
                Some(i) => i,
                None => {
                    sums.push(Sum {
                        family: e.family,
                        label: e.label.clone(),
                        path: e.path.clone(),
                        count: 0,
                        error: 0,
                        batches: 0,
                        lat_count: 0,
                        lat_sum: 0,
                        buckets: [0; BUCKETS_NS.len()],
                    });
                    sums.len() - 1
                }
            };
            let s = &mut sums[i];
            let m = &e.metrics;
            s.count += m.count.get();
            s.error += m.error.get();
            s.batches += m.batches.get();
            s.lat_count += m.latency.count.get();
            s.lat_sum += m.latency.sum_ns.get();
            for (b, c) in s.buckets.iter_mut().zip(m.latency.buckets.iter()) {
                *b += c.get();
            }
        }
        let mut out = String::new();
        for family in [Family::Input, Family::Processor, Family::Output] {
            let p = family.prefix();
            let count_name = match family {
                Family::Input | Family::Processor => format!("{p}_received"),
                Family::Output => format!("{p}_sent"),
            };
            let of_family = || sums.iter().filter(move |s| s.family == family);
            if of_family().next().is_none() {
                continue;
            }
            let _ = writeln!(out, "# TYPE {count_name} counter");
            for s in of_family() {
                let _ = writeln!(
                    out,
                    "{count_name}{{{}}} {}",
                    labels(s.label.as_str(), &s.path),
                    s.count
                );
            }
            if family == Family::Output {
                let _ = writeln!(out, "# TYPE output_batch_sent counter");
                for s in of_family() {
                    let l = labels(&s.label, &s.path);
                    let _ = writeln!(out, "output_batch_sent{{{l}}} {}", s.batches);
                }
            }
            if family != Family::Input {
                let _ = writeln!(out, "# TYPE {p}_error counter");
                for s in of_family() {
                    let _ = writeln!(
                        out,
                        "{p}_error{{{}}} {}",
                        labels(&s.label, &s.path),
                        s.error
                    );
                }
            }
            let _ = writeln!(out, "# TYPE {p}_latency_ns histogram");
            for s in of_family() {
                let l = labels(&s.label, &s.path);
                let mut cumulative = 0;
                for (bound, n) in BUCKETS_NS.iter().zip(s.buckets.iter()) {
                    cumulative += n;
                    let _ = writeln!(
                        out,
                        "{p}_latency_ns_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{p}_latency_ns_bucket{{{l},le=\"+Inf\"}} {}",
                    s.lat_count
                );
                let _ = writeln!(out, "{p}_latency_ns_sum{{{l}}} {}", s.lat_sum);
                let _ = writeln!(out, "{p}_latency_ns_count{{{l}}} {}", s.lat_count);
            }
        }
        out
    }
}

fn labels(label: &str, path: &str) -> String {
    format!("label=\"{}\",path=\"{}\"", escape(label), escape(path))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_summed_per_component() {
        let r = Registry::default();
        let a = r.register(Family::Output, "out", "root.output");
        let b = r.register(Family::Output, "out", "root.output");
        a.count.add(2);
        b.count.add(3);
        b.error.add(1);
        a.latency.record(Duration::from_micros(20));
        let text = r.render();
        assert!(
            text.contains("output_sent{label=\"out\",path=\"root.output\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("output_error{label=\"out\",path=\"root.output\"} 1\n"));
        assert!(text.contains("le=\"50000\"} 1\n"));
        assert!(text.contains("output_latency_ns_count{label=\"out\",path=\"root.output\"} 1\n"));
    }
}
