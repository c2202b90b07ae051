//! `loadgen report RESULTS.json`: reads a `bench/run.sh` results file and writes,
//! beside it, a Markdown summary (`RESULTS.md`) and two hand-written SVG charts:
//! closed-loop throughput per scenario and system (`RESULTS-throughput.svg`) and
//! open-loop latency percentile curves (`RESULTS-latency.svg`). Every figure is the
//! median over the run's rounds.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// Bar and curve colours, by a system's position in its scenario (the first is sluice).
const PALETTE: [&str; 6] = [
    "#1f6fb4", "#e8772e", "#2f9e44", "#c92a2a", "#7950f2", "#8c6d31",
];
/// The open-loop loads run.sh measures, as it names them, and how to print them:
/// shares of each system's own maximum, and one rate common to every system.
const OPEN_LOADS: [(&str, &str); 3] = [
    ("open50", "50% of max"),
    ("open90", "90% of max"),
    ("same50", "50% of the round's lowest max"),
];

pub fn main(args: &[String]) -> Result<(), String> {
    let [path] = args else {
        return Err("usage: loadgen report RESULTS.json".into());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let results = Results::from_json(&doc)?;
    let base = path.strip_suffix(".json").unwrap_or(path);
    let stem = Path::new(base)
        .file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let outputs = [
        (format!("{base}.md"), markdown(&doc, &results, &stem)),
        (format!("{base}-throughput.svg"), throughput_svg(&results)),
        (format!("{base}-latency.svg"), latency_svg(&results)),
    ];
    for (file, body) in outputs {
        std::fs::write(&file, body).map_err(|e| format!("{file}: {e}"))?;
        println!("{file}");
    }
    Ok(())
}

/// One scenario's systems, in the order the run measured them.
pub(crate) struct Scenario<'a> {
    pub name: &'a str,
    pub systems: Vec<System<'a>>,
}

/// All rounds of one system in one scenario.
pub(crate) struct System<'a> {
    pub name: &'a str,
    /// Rows by load (`max`, `open50`, `open90`, `same50`), one per round.
    rows: Vec<&'a Value>,
}

impl<'a> System<'a> {
    fn loads(&self, load: &str) -> impl Iterator<Item = &'a Value> + '_ {
        let load = load.to_string();
        self.rows
            .iter()
            .copied()
            .filter(move |r| r["load"].as_str() == Some(&load))
    }

    /// Median over the rounds of `f` on the rows of `load` that have it.
    fn median(&self, load: &str, f: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
        median(self.loads(load).filter_map(f).collect())
    }

    fn range(&self, load: &str, f: impl Fn(&Value) -> Option<f64>) -> Option<(f64, f64)> {
        let v: Vec<f64> = self.loads(load).filter_map(f).collect();
        let lo = v.iter().copied().reduce(f64::min)?;
        let hi = v.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }

    /// `f` on the row of `load` in `round`, if that row has it.
    fn in_round(
        &self,
        load: &str,
        round: &Value,
        f: &impl Fn(&Value) -> Option<f64>,
    ) -> Option<f64> {
        self.loads(load).find(|r| &r["round"] == round).and_then(f)
    }

    /// `f` of this system and of `other` in the rows of `load` of the same round; of a
    /// paired-slice load (`pair_*`), only this system's slices against `other`.
    pub fn pairs(
        &self,
        other: &System,
        load: &str,
        f: impl Fn(&Value) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        let slices = load.starts_with("pair_");
        self.loads(load)
            .filter(|r| !slices || r["vs"].as_str() == Some(other.name))
            .filter_map(|r| Some((f(r)?, other.in_round(load, &r["round"], &f)?)))
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|r| {
                let e = r["error"].as_str()?;
                Some(format!(
                    "round {} {}: {e}",
                    r["round"],
                    r["load"].as_str().unwrap_or("?")
                ))
            })
            .collect()
    }
}

pub(crate) struct Results<'a> {
    pub scenarios: Vec<Scenario<'a>>,
}

impl<'a> Results<'a> {
    pub fn from_json(doc: &'a Value) -> Result<Results<'a>, String> {
        let rows = doc["rows"]
            .as_array()
            .ok_or("results file has no \"rows\" array")?;
        let mut scenarios: Vec<Scenario> = Vec::new();
        for row in rows {
            let (Some(sc), Some(sys)) = (row["scenario"].as_str(), row["system"].as_str()) else {
                return Err(format!("row without scenario or system: {row}"));
            };
            let s = match scenarios.iter().position(|s| s.name == sc) {
                Some(i) => &mut scenarios[i],
                None => {
                    scenarios.push(Scenario {
                        name: sc,
                        systems: Vec::new(),
                    });
                    scenarios.last_mut().unwrap()
                }
            };
            match s.systems.iter_mut().find(|x| x.name == sys) {
                Some(x) => x.rows.push(row),
                None => s.systems.push(System {
                    name: sys,
                    rows: vec![row],
                }),
            }
        }
        Ok(Results { scenarios })
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub(crate) fn rps(r: &Value) -> Option<f64> {
    r["client"]["rps"].as_f64()
}

/// Server CPU per request: its user + system ticks over the whole client run divided
/// by every answer the client received in it (warm-up included, as the ticks are).
pub(crate) fn server_us(r: &Value) -> Option<f64> {
    let ticks = r["server"]["cpu_ticks"].as_f64()?;
    let hz = r["server"]["clk_tck"].as_f64()?;
    let answers = r["client"]["answers_total"].as_f64()?;
    (answers > 0.0).then(|| ticks / hz * 1e6 / answers)
}

/// The load generator's own CPU time per request without its idle polling (wrk: all
/// of its CPU time; it sleeps when idle).
fn client_us(r: &Value) -> Option<f64> {
    let cpu = &r["client"]["cpu"];
    cpu["busy_us_per_request"]
        .as_f64()
        .or_else(|| cpu["us_per_request"].as_f64())
}

fn rss_mib(r: &Value) -> Option<f64> {
    Some(r["server"]["vmhwm_kib"].as_f64()? / 1024.0)
}

fn latency(key: &'static str) -> impl Fn(&Value) -> Option<f64> {
    client_figure("latency_us", key)
}

/// Figure `key` of the client's output's `set` (`latency_us`, `arrival_latency_us`,
/// ...; figures an older file lacks are `None`).
pub(crate) fn client_figure(
    set: &'static str,
    key: &'static str,
) -> impl Fn(&Value) -> Option<f64> {
    move |r| r["client"][set][key].as_f64()
}

fn error_count(r: &Value) -> Option<f64> {
    let e = r["client"]["errors"].as_object()?;
    Some(e.values().filter_map(Value::as_f64).sum())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// `950`, `1.5k`, `12k`, `1M`: at most one decimal, none when it is 0.
fn short(v: f64) -> String {
    let (scaled, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if scaled < 10.0 && !unit.is_empty() {
        1
    } else {
        0
    };
    let text = format!("{scaled:.digits$}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

fn markdown(doc: &Value, res: &Results, stem: &str) -> String {
    let m = &doc["machine"];
    let s = &doc["settings"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Benchmark run {} ({})\n",
        doc["date"].as_str().unwrap_or("?"),
        doc["mode"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), Linux {}. Server under test on CPU {}, load generator on \
         CPU {}. Commit {}, sluice built {}. {} round(s), systems alternating (round r starts with the r-th \
         system, after one unrecorded closed-loop run of each); closed loop {} s and \
         open loop {} s per row after {} s of warm-up, {} connections unless the system \
         says otherwise. Figures are medians over the rounds; raw numbers in `{stem}.json`. \
         Client CPU: loadgen's own without its idle polling (`--spin`), or wrk's.\n",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["server_cpu"],
        m["load_cpu"],
        doc["commit"].as_str().unwrap_or("?"),
        // Runs before the field was written measured the plain release build.
        match doc["sluice_build"].as_str().unwrap_or("release") {
            "pgo" => "with profile-guided optimisation (`bench/run.sh pgo`)",
            _ => "as a plain release build",
        },
        s["rounds"],
        s["max_secs"],
        s["open_secs"],
        s["warmup_secs"],
        s["conns"],
    );
    if s["open_sched"] == "fifo" {
        out.push_str(
            "The 50% rows (of its own max and of the round's lowest): the server's \
             threads at SCHED_FIFO, so that the machine's other processes do not preempt \
             it (see docs/benchmarks.md).\n\n",
        );
    }
    out.push_str("## Throughput (closed loop)\n\n");
    out.push_str(
        "| scenario | system | req/s | min-max | vs first | server CPU us/req | \
         client CPU us/req | server peak RSS MiB | errors |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for sc in &res.scenarios {
        let first = sc.systems.first().and_then(|x| x.median("max", rps));
        for sys in &sc.systems {
            let r = sys.median("max", rps);
            let range = sys
                .range("max", rps)
                .map_or_else(|| "-".into(), |(lo, hi)| format!("{lo:.0}-{hi:.0}"));
            let vs = match (r, first) {
                (Some(r), Some(f)) if f > 0.0 => format!("{:.2}", r / f),
                _ => "-".into(),
            };
            let errors: f64 = sys.rows.iter().filter_map(|r| error_count(r)).sum();
            let failed = sys.rows.iter().filter(|r| r["error"].is_string()).count();
            let errors = if failed > 0 {
                format!("{errors:.0} + {failed} failed rows")
            } else {
                format!("{errors:.0}")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {range} | {vs} | {} | {} | {} | {errors} |",
                sc.name,
                sys.name,
                fmt(r, 0),
                fmt(sys.median("max", server_us), 2),
                fmt(sys.median("max", client_us), 2),
                fmt(sys.median("max", rss_mib), 1),
            );
        }
    }
    out.push_str(
        "\n## Latency at a fixed rate (open loop)\n\nEach system at 50% and 90% of its own \
         closed-loop maximum of the same round, then every system at one rate, half the \
         lowest maximum of the round (equal offered load); latency runs from each request's intended \
         send time, so queueing behind a busy connection counts. Microseconds. Requests \
         still queued at the end mean the rate was not kept (by the server, or by the \
         client: in open loop it pays a wake-up of the idle server on most sends); the \
         latency then mostly measures that queue.\n\n",
    );
    out.push_str(
        "| scenario | system | load | rate req/s | achieved req/s | queued at end | p50 | \
         p90 | p99 | p99.9 | max | server CPU us/req |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for sc in &res.scenarios {
        for (load, label) in OPEN_LOADS {
            for sys in &sc.systems {
                if sys.loads(load).next().is_none() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "| {} | {} | {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    sc.name,
                    sys.name,
                    fmt(sys.median(load, |r| r["target_rate"].as_f64()), 0),
                    fmt(sys.median(load, rps), 0),
                    fmt(
                        sys.median(load, |r| r["client"]["backlog_at_end"].as_f64()),
                        0
                    ),
                    fmt(sys.median(load, latency("p50")), 1),
                    fmt(sys.median(load, latency("p90")), 1),
                    fmt(sys.median(load, latency("p99")), 1),
                    fmt(sys.median(load, latency("p99_9")), 1),
                    fmt(sys.median(load, latency("max")), 1),
                    fmt(sys.median(load, server_us), 2),
                );
            }
        }
    }
    head_to_head(&mut out, res);
    let kafka: Vec<_> = res
        .scenarios
        .iter()
        .flat_map(|sc| sc.systems.iter().map(move |s| (sc.name, s)))
        .filter(|(_, s)| s.rows.iter().any(|r| r["kafka"].is_object()))
        .collect();
    if !kafka.is_empty() {
        out.push_str(
            "\n## Kafka batching\n\nFrom sluice's `/metrics`, the Kafka output's \
             `output_sent` (records) and `output_batch_sent` (acked produce requests), \
             summed over every row of the run.\n\n",
        );
        out.push_str("| scenario | system | records | produce requests | records per request |\n");
        out.push_str("|---|---|---:|---:|---:|\n");
        for (sc, sys) in kafka {
            let sum =
                |k: &str| -> f64 { sys.rows.iter().filter_map(|r| r["kafka"][k].as_f64()).sum() };
            let (rec, req) = (sum("records"), sum("produce_requests"));
            let per = (req > 0.0).then(|| rec / req);
            let _ = writeln!(
                out,
                "| {sc} | {} | {rec:.0} | {req:.0} | {} |",
                sys.name,
                fmt(per, 1)
            );
        }
    }
    let failures: Vec<String> = res
        .scenarios
        .iter()
        .flat_map(|sc| {
            sc.systems.iter().flat_map(move |s| {
                s.errors()
                    .into_iter()
                    .map(move |e| format!("- {} / {}, {e}", sc.name, s.name))
            })
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\n## Rows that failed\n\n");
        for f in failures {
            let _ = writeln!(out, "{}", f.replace('\n', " "));
        }
    }
    let _ = writeln!(
        out,
        "\n![throughput]({stem}-throughput.svg)\n\n![latency]({stem}-latency.svg)"
    );
    out
}

/// What the targets compare: the scenario's first system (sluice) against each
/// baseline (a system not named `sluice...`). By round: the ratio of the medians, and
/// the rounds it won, pairing rows of the same round. By paired slice (`bench/run.sh`'s
/// `pair_*` rows, the two sides a second or two apart): the median of the slices'
/// ratios, and the slices it won.
const HEAD_TO_HEAD: [(&str, &str, bool, Metric); 4] = [
    ("max", "req/s", true, rps),
    ("max", "server CPU us/req", false, server_us),
    ("open50", "p99 at own 50%", false, |r| latency("p99")(r)),
    ("same50", "p99 at equal load", false, |r| latency("p99")(r)),
];

pub(crate) type Metric = fn(&Value) -> Option<f64>;

/// Whether figure `a` is at least as good as `b`: higher or equal when higher wins.
pub(crate) fn at_least_as_good(a: f64, b: f64, higher_wins: bool) -> bool {
    if higher_wins {
        a >= b
    } else {
        a <= b
    }
}

/// One cell of the head-to-head tables: `ratio (won of paired)`, or `-`.
fn compare(first: &System, other: &System, load: &str, f: Metric, higher_wins: bool) -> String {
    let slices = load.starts_with("pair_");
    let pairs = first.pairs(other, load, f);
    if pairs.is_empty() {
        return "-".into();
    }
    let ratio = if slices {
        median(
            pairs
                .iter()
                .filter(|p| p.1 > 0.0)
                .map(|p| p.0 / p.1)
                .collect(),
        )
    } else {
        match (first.median(load, f), other.median(load, f)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    };
    let won = pairs
        .iter()
        .filter(|&&(a, b)| at_least_as_good(a, b, higher_wins))
        .count();
    format!("{} ({won} of {})", fmt(ratio, 2), pairs.len())
}

fn head_to_head(out: &mut String, res: &Results) {
    let names: Vec<&str> = HEAD_TO_HEAD.iter().map(|h| h.1).collect();
    let mut any = false;
    for (prefix, title, how) in [
        (
            "",
            "By round",
            "the ratio of the medians over the rounds; in brackets, the rounds in which the \
             first did at least as well, out of the rounds both ran",
        ),
        (
            "pair_",
            "By paired slice",
            "short rows of the two back to back (`bench/run.sh`, `PAIRS`); the median of \
             the slices' ratios; in brackets, the slices in which the first did at least as \
             well",
        ),
    ] {
        let mut lines = Vec::new();
        for sc in &res.scenarios {
            let Some((first, others)) = sc.systems.split_first() else {
                continue;
            };
            for other in others.iter().filter(|o| !o.name.starts_with("sluice")) {
                let cells: Vec<String> = HEAD_TO_HEAD
                    .iter()
                    .map(|&(load, _, higher_wins, f)| {
                        compare(first, other, &format!("{prefix}{load}"), f, higher_wins)
                    })
                    .collect();
                if cells.iter().any(|c| c != "-") {
                    lines.push(format!(
                        "| {} | {} / {} | {} |",
                        sc.name,
                        first.name,
                        other.name,
                        cells.join(" | ")
                    ));
                }
            }
        }
        if lines.is_empty() {
            continue;
        }
        if !any {
            out.push_str(
                "\n## Head to head\n\nThe first system of each scenario against each \
                 baseline (higher req/s, lower CPU and p99 are better).\n",
            );
            any = true;
        }
        let _ = writeln!(out, "\n{title}: {how}.\n");
        let _ = writeln!(out, "| scenario | systems | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---:|".repeat(names.len()));
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

fn svg_open(out: &mut String, w: f64, h: f64) {
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>"
    );
}

fn throughput_svg(res: &Results) -> String {
    const BAR: f64 = 34.0;
    const GAP: f64 = 8.0;
    const GROUP_GAP: f64 = 40.0;
    const LEFT: f64 = 70.0;
    const TOP: f64 = 60.0;
    const PLOT_H: f64 = 300.0;
    const BOTTOM: f64 = 170.0;
    let bars: usize = res.scenarios.iter().map(|s| s.systems.len()).sum();
    let groups = res.scenarios.len() as f64;
    let plot_w = bars as f64 * (BAR + GAP) + (groups - 1.0).max(0.0) * GROUP_GAP + GAP;
    // Wide enough for the title even with a single scenario.
    let (w, h) = ((LEFT + plot_w + 20.0).max(360.0), TOP + PLOT_H + BOTTOM);
    let top_value = res
        .scenarios
        .iter()
        .flat_map(|s| &s.systems)
        .filter_map(|s| s.range("max", rps).map(|r| r.1))
        .fold(0.0, f64::max);
    let ymax = nice_ceiling(top_value);
    let y = |v: f64| TOP + PLOT_H - v / ymax * PLOT_H;
    let mut out = String::new();
    svg_open(&mut out, w, h);
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Throughput, \
         closed loop</text><text x=\"{LEFT}\" y=\"40\" fill=\"#555\">bar: median over \
         rounds; whisker: min to max</text>"
    );
    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\" \
         transform=\"rotate(-90 16 {:.1})\">req/s</text>",
        TOP + PLOT_H / 2.0,
        TOP + PLOT_H / 2.0
    );
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let yy = y(v);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            short(v)
        );
    }
    let mut x = LEFT + GAP;
    for sc in &res.scenarios {
        let group_start = x;
        for (k, sys) in sc.systems.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let cx = x + BAR / 2.0;
            match sys.median("max", rps) {
                Some(v) => {
                    let _ = writeln!(
                        out,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{BAR}\" height=\"{:.1}\" \
                         fill=\"{colour}\"><title>{} {}: {v:.0} req/s</title></rect>\
                         <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
                         font-size=\"10\">{}</text>",
                        y(v),
                        PLOT_H - (y(v) - TOP),
                        esc(sc.name),
                        esc(sys.name),
                        y(v) - 4.0
                            - if sys.range("max", rps).is_some() {
                                6.0
                            } else {
                                0.0
                            },
                        short(v)
                    );
                    if let Some((lo, hi)) = sys.range("max", rps) {
                        let _ = writeln!(
                            out,
                            "<line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" \
                             stroke=\"#222\"/>",
                            y(lo),
                            y(hi)
                        );
                    }
                }
                None => {
                    let _ = writeln!(
                        out,
                        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
                         fill=\"#c92a2a\" font-size=\"10\">error</text>",
                        TOP + PLOT_H - 6.0
                    );
                }
            }
            let ly = TOP + PLOT_H + 12.0;
            let _ = writeln!(
                out,
                "<text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" \
                 transform=\"rotate(-40 {cx:.1} {ly:.1})\">{}</text>",
                esc(sys.name)
            );
            x += BAR + GAP;
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            (group_start + x - GAP) / 2.0,
            h - 12.0,
            esc(sc.name)
        );
        x += GROUP_GAP;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>\n</svg>",
        TOP + PLOT_H,
        LEFT + plot_w,
        TOP + PLOT_H
    );
    out
}

/// Where percentile `p` sits on the "nines" axis: 0 at p0, 1 at p90, 2 at p99 ...
fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).log10()
}

/// The highest percentile on the x axis; the maximum gets its own tick after it.
const TOP_NINES: f64 = 5.0;
const MAX_X: f64 = TOP_NINES + 0.6;

fn latency_svg(res: &Results) -> String {
    const PW: f64 = 690.0;
    /// Room right of each plot for its legend.
    const LEGEND: f64 = 240.0;
    const PH: f64 = 290.0;
    const ML: f64 = 62.0;
    const MR: f64 = 16.0;
    const MT: f64 = 34.0;
    const MB: f64 = 44.0;
    let rows = res.scenarios.len().max(1) as f64;
    let (w, h) = (PW * OPEN_LOADS.len() as f64, 40.0 + PH * rows);
    let mut out = String::new();
    svg_open(&mut out, w, h);
    let _ = writeln!(
        out,
        "<text x=\"12\" y=\"24\" font-size=\"15\" font-weight=\"bold\">Latency by percentile, \
         open loop (µs from the intended send time; median over rounds)</text>"
    );
    for (row, sc) in res.scenarios.iter().enumerate() {
        for (col, (load, label)) in OPEN_LOADS.iter().enumerate() {
            let ox = col as f64 * PW;
            let oy = 40.0 + row as f64 * PH;
            let (pw, ph) = (PW - ML - LEGEND - MR, PH - MT - MB);
            // Per system: its colour index, itself, its (percentile, latency) points.
            let curves: Vec<_> = sc
                .systems
                .iter()
                .enumerate()
                .map(|(k, s)| (k, s, curve(s, load)))
                .filter(|(_, _, c)| !c.is_empty())
                .collect();
            let values = curves.iter().flat_map(|c| c.2.iter().map(|p| p.1));
            let lo = values.clone().reduce(f64::min).unwrap_or(10.0).max(1.0);
            let hi = values.fold(0.0, f64::max).max(lo * 10.0);
            let (d0, d1) = (lo.log10().floor(), hi.log10().ceil());
            let px = |p: f64| {
                let n = if p >= 100.0 {
                    MAX_X
                } else {
                    nines(p).min(TOP_NINES)
                };
                ox + ML + n / MAX_X * pw
            };
            let py = |v: f64| oy + MT + ph - (v.max(1.0).log10() - d0) / (d1 - d0) * ph;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}, {label}</text>\
                 <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" \
                 fill=\"none\" stroke=\"#222\"/>",
                ox + ML,
                oy + MT - 10.0,
                esc(sc.name),
                ox + ML,
                oy + MT
            );
            let mut d = d0;
            while d <= d1 {
                let v = 10f64.powf(d);
                let yy = py(v);
                let _ = writeln!(
                    out,
                    "<line x1=\"{:.1}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" \
                     stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                     text-anchor=\"end\">{}</text>",
                    ox + ML,
                    ox + ML + pw,
                    ox + ML - 5.0,
                    yy + 4.0,
                    short(v)
                );
                d += 1.0;
            }
            for (p, name) in [
                (0.0, "0"),
                (90.0, "90"),
                (99.0, "99"),
                (99.9, "99.9"),
                (99.99, "99.99"),
                (99.999, "99.999"),
                (100.0, "max"),
            ] {
                let xx = px(p);
                let _ = writeln!(
                    out,
                    "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" \
                     stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" \
                     text-anchor=\"middle\">{name}</text>",
                    oy + MT,
                    oy + MT + ph,
                    oy + MT + ph + 15.0
                );
            }
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">percentile\
                 </text>",
                ox + ML + pw / 2.0,
                oy + MT + ph + 32.0
            );
            if curves.is_empty() {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#c92a2a\">\
                     no data</text>",
                    ox + ML + pw / 2.0,
                    oy + MT + ph / 2.0
                );
            }
            for (n, (k, sys, points)) in curves.iter().enumerate() {
                let colour = PALETTE[k % PALETTE.len()];
                let pts: Vec<String> = points
                    .iter()
                    .map(|&(p, v)| format!("{:.1},{:.1}", px(p), py(v)))
                    .collect();
                let rate = sys.median(load, |r| r["target_rate"].as_f64());
                let (lx, ly) = (ox + ML + pw + 10.0, oy + MT + 12.0 + 16.0 * n as f64);
                let _ = writeln!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" \
                     stroke-width=\"2\"/>\
                     <line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" \
                     stroke=\"{colour}\" stroke-width=\"3\"/>\
                     <text x=\"{:.1}\" y=\"{ly:.1}\">{} ({} req/s)</text>",
                    pts.join(" "),
                    ly - 4.0,
                    lx + 14.0,
                    ly - 4.0,
                    lx + 18.0,
                    esc(sys.name),
                    rate.map_or_else(|| "?".into(), short)
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A system's percentile curve at `load`: per percentile, the median over rounds.
fn curve(sys: &System, load: &str) -> Vec<(f64, f64)> {
    let rounds: Vec<&Vec<Value>> = sys
        .loads(load)
        .filter_map(|r| r["client"]["percentiles_us"].as_array())
        .collect();
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .filter_map(|(i, pv)| {
            let p = pv[0].as_f64()?;
            let v = median(
                rounds
                    .iter()
                    .filter_map(|r| r.get(i)?[1].as_f64())
                    .collect(),
            )?;
            Some((p, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceiling(87_000.0), 100_000.0);
        assert_eq!(nice_ceiling(120_000.0), 200_000.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(short(123_456.0), "123k");
        assert_eq!(short(1_000.0), "1k");
        assert_eq!(short(1_500.0), "1.5k");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(950.0), "950");
    }

    /// Rounds are paired by number: a round in which only one system ran counts for
    /// neither; the ratio is of the medians over all rounds.
    #[test]
    fn head_to_head_counts_rounds_won() {
        let row = |sys: &str, round: u32, load: &str, rps: f64, p99: f64| {
            serde_json::json!({"scenario": "weather", "system": sys, "round": round, "load": load,
                "client": {"rps": rps, "latency_us": {"p99": p99}}})
        };
        let pair = |sys: &str, vs: &str, round: u32, rps: f64| {
            serde_json::json!({"scenario": "weather", "system": sys, "vs": vs, "round": round,
                "load": "pair_max", "client": {"rps": rps}})
        };
        let doc = serde_json::json!({"rows": [
            row("sluice", 1, "max", 120.0, 0.0), row("nginx", 1, "max", 100.0, 0.0),
            row("sluice", 2, "max", 90.0, 0.0), row("nginx", 2, "max", 100.0, 0.0),
            row("sluice", 3, "max", 130.0, 0.0), row("sluice-other", 1, "max", 10.0, 0.0),
            row("sluice", 1, "open50", 60.0, 80.0), row("nginx", 1, "open50", 50.0, 100.0),
            row("sluice", 2, "open50", 45.0, 300.0), row("nginx", 2, "open50", 50.0, 100.0),
            // Paired slices against two baselines: each matched with its own.
            pair("sluice", "nginx", 1, 110.0), pair("nginx", "sluice", 1, 100.0),
            pair("sluice", "nginx", 2, 95.0), pair("nginx", "sluice", 2, 100.0),
            pair("sluice", "nginx", 3, 130.0), pair("nginx", "sluice", 3, 100.0),
            pair("sluice", "lua", 1, 50.0), pair("lua", "sluice", 1, 100.0),
        ]});
        let res = Results::from_json(&doc).unwrap();
        let mut md = String::new();
        head_to_head(&mut md, &res);
        assert!(
            md.contains("| weather | sluice / nginx | 1.20 (1 of 2) | - | 1.90 (1 of 2) | - |"),
            "{md}"
        );
        assert!(!md.contains("sluice-other"), "{md}");
        // Ratios 1.10, 0.95, 1.30: their median, and 2 slices won of 3.
        assert!(
            md.contains("| weather | sluice / nginx | 1.10 (2 of 3) | - | - | - |"),
            "{md}"
        );
        assert!(
            md.contains("| weather | sluice / lua | 0.50 (0 of 1) | - | - | - |"),
            "{md}"
        );
    }

    #[test]
    fn report_from_a_small_results_file() {
        let doc: Value = serde_json::json!({
            "date": "2026-01-01T00:00:00Z", "mode": "quick", "commit": "abc", "sluice_build": "pgo",
            "machine": {"nproc": 2, "cpu": "X", "kernel": "6", "server_cpu": 0, "load_cpu": 1},
            "settings": {"rounds": 1, "max_secs": 3, "open_secs": 2, "warmup_secs": 0.5, "conns": 64,
                         "open_sched": "fifo"},
            "rows": [
                {"scenario": "weather", "system": "sluice", "round": 1, "load": "max",
                 "server": {"cpu_ticks": 200, "clk_tck": 100, "vmhwm_kib": 10240},
                 "client": {"rps": 100000.0, "answers_total": 200000, "cpu": {"us_per_request": 4.0, "busy_us_per_request": 3.0},
                             "errors": {"read": 0}}},
                {"scenario": "weather", "system": "sluice", "round": 1, "load": "open50",
                 "target_rate": 50000.0,
                 "client": {"rps": 50000.0, "latency_us": {"p50": 40.0}, "backlog_at_end": 0,
                             "percentiles_us": [[0.0, 10.0], [50.0, 40.0], [100.0, 900.0]]}},
                {"scenario": "weather", "system": "sluice", "round": 1, "load": "same50",
                 "target_rate": 30000.0,
                 "client": {"rps": 30000.0, "latency_us": {"p50": 35.0}, "backlog_at_end": 0,
                             "percentiles_us": [[0.0, 10.0], [50.0, 35.0], [100.0, 800.0]]}},
                {"scenario": "weather", "system": "nginx", "round": 1, "load": "max",
                 "error": "nginx did not start"}
            ]
        });
        let res = Results::from_json(&doc).unwrap();
        let md = markdown(&doc, &res, "x");
        assert!(
            md.contains(
                "| weather | sluice | 100000 | 100000-100000 | 1.00 | 10.00 | 3.00 | 10.0 | 0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| weather | sluice | 50% of max | 50000 | 50000 | 0 | 40.0 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| weather | sluice | 50% of the round's lowest max | 30000 | 30000 | 0 | 35.0 |"
            ),
            "{md}"
        );
        assert!(md.contains("at SCHED_FIFO"), "{md}");
        assert!(
            md.contains("Commit abc, sluice built with profile-guided optimisation"),
            "{md}"
        );
        assert!(
            md.contains("weather / nginx, round 1 max: nginx did not start"),
            "{md}"
        );
        let svg = throughput_svg(&res);
        assert!(svg.contains(">100k<") && svg.contains(">error<"), "{svg}");
        let svg = latency_svg(&res);
        assert!(
            svg.contains("<polyline") && svg.contains("sluice (50k req/s)"),
            "{svg}"
        );
    }
}
