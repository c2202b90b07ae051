//! `loadgen pool RESULTS.json...`: the paired slices of several `bench/run.sh` runs
//! taken together. One run's ten slices per baseline cannot tell two servers apart
//! when the machine's own stalls set the p99 of both; fifty can bound the difference.
//!
//! For each scenario, its first system against each baseline, each slice load
//! (`pair_max`, `pair_open50`, `pair_same50`) and metric, it prints the slices, how
//! many of them the first system did at least as well in, and the geometric mean of
//! the slices' ratios (first / baseline) with a 95% bootstrap interval: the slices
//! resampled with replacement, 4,000 times, from a fixed seed, so the same files
//! always print the same figures. An interval that holds 1 means the files do not
//! tell which system is better in that metric.
//!
//! A second table takes, for each p99, only the quiet slices: those in which both
//! p99s stayed under `QUIET_BELOW_US`, so that no stall of the machine set either.
//! There a difference of a few microseconds shows that the ratios over all slices
//! hide: the slices, how many the first system did at least as well in, the median
//! p99 of each system and the median of the differences (first - baseline), with its
//! 95% bootstrap interval (the same resampling).

use std::fmt::Write as _;

use serde_json::Value;

use crate::report::{at_least_as_good, client_figure, median, rps, server_us, Metric, Results};

/// What to compare at the closed-loop maximum, and whether higher is better.
const AT_MAX: [(&str, bool, Metric); 2] = [
    ("req/s", true, rps),
    ("server CPU us/req", false, server_us),
];
/// The slice loads at half a maximum (see the module docs).
const HALF_LOADS: [&str; 2] = ["pair_same50", "pair_open50"];
/// What to compare at each half load (lower is better): a name and where the client's
/// output holds it (figure set, key). Besides the p99 from the due time to the client's
/// read (the latency every report uses), open-loop rows split it: "p99 at arrival" ends
/// at the kernel's receive stamp instead of the read; "p99 send delay" is from the due
/// time to the write (the client running late); "p99 round trip" from the write to the
/// receive stamp, the server's part.
const AT_HALF: [(&str, &str, &str); 6] = [
    ("p50", "latency_us", "p50"),
    ("p90", "latency_us", "p90"),
    ("p99", "latency_us", "p99"),
    ("p99 at arrival", "arrival_latency_us", "p99"),
    ("p99 send delay", "send_delay_us", "p99"),
    ("p99 round trip", "round_trip_us", "p99"),
];

/// One compared metric: its slice load, name, whether higher is better, and where a
/// row holds it.
struct Compared {
    load: &'static str,
    name: &'static str,
    higher_wins: bool,
    figure: Figure,
}

#[derive(Clone, Copy)]
enum Figure {
    Row(Metric),
    /// A figure of the client's output: set and key.
    Client(&'static str, &'static str),
}

impl Figure {
    fn of(self, r: &Value) -> Option<f64> {
        match self {
            Figure::Row(f) => f(r),
            Figure::Client(set, key) => client_figure(set, key)(r),
        }
    }
}

/// Every compared metric, in the tables' order: the maximum's, then each half load's.
fn compared() -> Vec<Compared> {
    let at_max = AT_MAX.iter().map(|&(name, higher_wins, f)| Compared {
        load: "pair_max",
        name,
        higher_wins,
        figure: Figure::Row(f),
    });
    let at_half = HALF_LOADS.iter().flat_map(|&load| {
        AT_HALF.iter().map(move |&(name, set, key)| Compared {
            load,
            name,
            higher_wins: false,
            figure: Figure::Client(set, key),
        })
    });
    at_max.chain(at_half).collect()
}

const RESAMPLES: usize = 4000;
/// A slice is quiet when both p99s stayed under this (microseconds): the machine's
/// stalls put a slice's p99 in the milliseconds, a quiet one is under 100 us.
const QUIET_BELOW_US: f64 = 300.0;

pub fn main(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("usage: loadgen pool RESULTS.json...".into());
    }
    let mut docs = Vec::new();
    for path in args {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        docs.push(doc);
    }
    print!("{}", pool(&docs)?);
    Ok(())
}

/// A scenario's first system against one baseline: the slices' figures (first,
/// baseline), per metric of [`compared`].
struct Matchup<'a> {
    key: (&'a str, &'a str, &'a str),
    pairs: Vec<Vec<(f64, f64)>>,
}

/// The Markdown table for `docs` (see the module docs).
fn pool(docs: &[Value]) -> Result<String, String> {
    let results = docs
        .iter()
        .map(Results::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    let metrics = compared();
    // In the order first seen.
    let mut found: Vec<Matchup> = Vec::new();
    for res in &results {
        for sc in &res.scenarios {
            let Some((first, others)) = sc.systems.split_first() else {
                continue;
            };
            for other in others.iter().filter(|o| !o.name.starts_with("sluice")) {
                let key = (sc.name, first.name, other.name);
                let i = found.iter().position(|m| m.key == key).unwrap_or_else(|| {
                    let pairs = vec![Vec::new(); metrics.len()];
                    found.push(Matchup { key, pairs });
                    found.len() - 1
                });
                for (cell, m) in found[i].pairs.iter_mut().zip(&metrics) {
                    // A failed row has no figure and so no pair; a zero (no answers)
                    // has no ratio and is left out as well.
                    cell.extend(
                        first
                            .pairs(other, m.load, |r| m.figure.of(r))
                            .into_iter()
                            .filter(|&(a, b)| a > 0.0 && b > 0.0),
                    );
                }
            }
        }
    }
    if found.is_empty() {
        return Err("no paired slices in these files (bench/run.sh full, PAIRS > 0)".into());
    }
    let mut out = format!(
        "Paired slices of {} run(s): geometric mean of the ratios (first / baseline), \
         95% bootstrap interval.\n\n\
         | scenario | systems | slices | metric | first at least as good | ratio | 95% interval |\n\
         |---|---|---|---|---:|---:|---|\n",
        docs.len()
    );
    for Matchup { key, pairs } in &found {
        let (sc, first, other) = key;
        for (m, pairs) in metrics.iter().zip(pairs) {
            let (load, name, higher_wins) = (m.load, m.name, m.higher_wins);
            let logs: Vec<f64> = pairs.iter().map(|(a, b)| (a / b).ln()).collect();
            let Some((mean, lo, hi)) = geomean_interval(&logs) else {
                continue;
            };
            let won = pairs
                .iter()
                .filter(|&&(a, b)| at_least_as_good(a, b, higher_wins))
                .count();
            let _ = writeln!(
                out,
                "| {sc} | {first} / {other} | {} | {name} | {won} of {} | {mean:.3} | {lo:.3} - {hi:.3} |",
                load.trim_start_matches("pair_"),
                logs.len()
            );
        }
    }
    out.push_str(&quiet(&metrics, &found));
    Ok(out)
}

/// The quiet-slice table (see the module docs).
fn quiet(metrics: &[Compared], found: &[Matchup]) -> String {
    let mut out = format!(
        "\nQuiet slices: both p99s of the row's metric under {QUIET_BELOW_US} us (so each row \
         picks its own); medians over them (us).\n\n\
         | scenario | systems | slices | metric | quiet | first at least as good | first's p99 | baseline's p99 | difference | 95% interval |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---|\n"
    );
    for Matchup { key, pairs } in found {
        let (sc, first, other) = key;
        for (m, pairs) in metrics.iter().zip(pairs) {
            let (load, name, higher_wins) = (m.load, m.name, m.higher_wins);
            if !name.starts_with("p99") {
                continue;
            }
            let quiet: Vec<(f64, f64)> = pairs
                .iter()
                .copied()
                .filter(|&(a, b)| a < QUIET_BELOW_US && b < QUIET_BELOW_US)
                .collect();
            if quiet.is_empty() {
                continue;
            }
            let won = quiet
                .iter()
                .filter(|&&(a, b)| at_least_as_good(a, b, higher_wins))
                .count();
            let med = |f: fn(&(f64, f64)) -> f64| median(quiet.iter().map(f).collect()).unwrap();
            let diffs: Vec<f64> = quiet.iter().map(|p| p.0 - p.1).collect();
            let (diff, lo, hi) =
                bootstrap(&diffs, |v| median(v.to_vec()).unwrap()).expect("quiet slices");
            let _ = writeln!(
                out,
                "| {sc} | {first} / {other} | {} | {name} | {} of {} | {won} | {:.1} | {:.1} | {diff:+.1} | {lo:+.1} - {hi:+.1} |",
                load.trim_start_matches("pair_"),
                quiet.len(),
                pairs.len(),
                med(|p| p.0),
                med(|p| p.1),
            );
        }
    }
    out
}

/// The geometric mean of the ratios whose logarithms are `logs`, with its 95%
/// bootstrap interval.
fn geomean_interval(logs: &[f64]) -> Option<(f64, f64, f64)> {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // exp is increasing, so the interval of the mean's exp is the exp of its interval.
    bootstrap(logs, mean).map(|(m, lo, hi)| (m.exp(), lo.exp(), hi.exp()))
}

/// `stat` of `values`, and the 2.5th and 97.5th percentiles of it over `RESAMPLES`
/// resamplings with replacement (fixed seed).
fn bootstrap(values: &[f64], stat: impl Fn(&[f64]) -> f64) -> Option<(f64, f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut sample = vec![0.0; n];
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            sample.fill_with(|| values[rng.below(n)]);
            stat(&sample)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    // The 100th and 3,900th of 4,000, counted from 1.
    let at = |q: f64| stats[((RESAMPLES as f64 * q) as usize).clamp(1, RESAMPLES) - 1];
    Some((stat(values), at(0.025), at(0.975)))
}

/// A small deterministic generator: the interval is a property of the files, so it
/// must not change from one printing to the next.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A results file with `pairs` slices of sluice against nginx: sluice's p99 is
    /// `p99s[i]` in slice i, nginx's always 100; req/s 1000 against 1000.
    fn run(p99s: &[f64]) -> Value {
        let mut rows = Vec::new();
        for (i, &p) in p99s.iter().enumerate() {
            for (system, p99) in [("sluice", p), ("nginx", 100.0)] {
                let vs = if system == "sluice" {
                    "nginx"
                } else {
                    "sluice"
                };
                rows.push(
                    json!({"scenario": "weather", "system": system, "round": i + 1,
                    "vs": vs, "load": "pair_same50",
                    "client": {"latency_us": {"p50": 10.0, "p90": 20.0, "p99": p99},
                               "arrival_latency_us": {"p99": p99 - 5.0},
                               "send_delay_us": {"p99": 3.0},
                               "round_trip_us": {"p99": p99 - 8.0}}}),
                );
                rows.push(
                    json!({"scenario": "weather", "system": system, "round": i + 1,
                    "vs": vs, "load": "pair_max", "client": {"rps": 1000.0}}),
                );
            }
        }
        json!({ "rows": rows })
    }

    fn line<'a>(table: &'a str, load: &str, metric: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.contains(&format!("| {load} | {metric} |")))
            .unwrap_or_else(|| panic!("no {load} {metric} in\n{table}"))
    }

    /// The interval of a table line: its last cell, `lo - hi`.
    fn interval(line: &str) -> (f64, f64) {
        let cell = line.trim_end_matches('|').rsplit('|').next().unwrap();
        let (lo, hi) = cell.trim().split_once(" - ").unwrap();
        (lo.parse().unwrap(), hi.parse().unwrap())
    }

    #[test]
    fn slices_of_several_runs_are_pooled() {
        // Two runs: sluice's p99 half of nginx's in 3 slices, double in 1.
        let table = pool(&[run(&[50.0, 50.0]), run(&[50.0, 200.0])]).unwrap();
        let p99 = line(&table, "same50", "p99");
        // exp((3 ln 0.5 + ln 2) / 4) = 0.5^0.5
        assert!(p99.contains("| 3 of 4 | 0.707 |"), "{p99}");
        let (lo, hi) = interval(p99);
        assert!(
            (0.5..0.707).contains(&lo) && (0.707..=2.0).contains(&hi),
            "{p99}"
        );
        let at_arrival = line(&table, "same50", "p99 at arrival");
        assert!(at_arrival.contains("| 3 of 4 |"), "{at_arrival}");
        // Equal req/s: every slice counts as won and the interval is exactly 1.
        let rps = line(&table, "max", "req/s");
        assert!(rps.contains("| 4 of 4 | 1.000 | 1.000 - 1.000 |"), "{rps}");
        // Loads without slices print nothing.
        assert!(!table.contains("| open50 |"), "{table}");
        assert!(table.starts_with("Paired slices of 2 run(s)"));
    }

    #[test]
    fn the_interval_is_the_same_every_time_and_narrows_with_more_slices() {
        let few = [40.0, 250.0, 80.0, 130.0].repeat(2);
        let many = few.repeat(8);
        let width = |t: &str| {
            let (lo, hi) = interval(line(t, "same50", "p99"));
            hi - lo
        };
        let a = pool(&[run(&few)]).unwrap();
        assert_eq!(a, pool(&[run(&few)]).unwrap());
        assert!(width(&pool(&[run(&many)]).unwrap()) < width(&a) / 2.0);
    }

    #[test]
    fn quiet_slices_leave_out_the_stalled_ones() {
        // Four quiet slices (nginx 100 us) and one in which sluice stalled.
        let table = pool(&[run(&[50.0, 50.0, 90.0, 200.0, 5000.0])]).unwrap();
        let (_, quiet) = table.split_once("Quiet slices").unwrap();
        let rows: Vec<&str> = quiet
            .lines()
            .filter(|l| l.starts_with("| weather"))
            .collect();
        // One row per p99 (at the read, at arrival, send delay, round trip): the p50s
        // and p90s (all under 300 us too) get none.
        assert_eq!(rows.len(), 4, "{quiet}");
        // Won 3 of the 4; medians 70 against 100; differences -50 -50 -10 +100.
        assert!(
            rows[0].contains("| same50 | p99 | 4 of 5 | 3 | 70.0 | 100.0 | -30.0 | "),
            "{}",
            rows[0]
        );
        // Resampling four slices: a median difference anywhere from -50 (three or more
        // -50s drawn) to +100 (three or more +100s: 5% of draws).
        assert!(rows[0].ends_with("| -50.0 - +100.0 |"), "{}", rows[0]);
        // At arrival every p99 is 5 us lower (same slices quiet, same wins).
        assert!(
            rows[1].contains("| same50 | p99 at arrival | 4 of 5 | 3 | 65.0 | 95.0 | -30.0 | "),
            "{}",
            rows[1]
        );
        // Both clients equally late (3 us), in the stalled slice too (each row picks its
        // own quiet slices): the difference is all in the round trip.
        assert!(
            rows[2].contains("| same50 | p99 send delay | 5 of 5 | 5 | 3.0 | 3.0 | +0.0 | "),
            "{}",
            rows[2]
        );
        assert!(
            rows[3].contains("| same50 | p99 round trip | 4 of 5 | 3 | 62.0 | 92.0 | -30.0 | "),
            "{}",
            rows[3]
        );
    }

    #[test]
    fn files_without_slices_are_an_error() {
        let e = pool(&[json!({"rows": []})]).unwrap_err();
        assert!(e.contains("no paired slices"), "{e}");
    }
}
