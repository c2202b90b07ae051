//! The YAML model of a sluice config and how it is read: environment interpolation,
//! `--set` overrides, Go-style durations, and errors located as `FILE:LINE:COL: message`.
//!
//! Everything is validated while it is deserialised (unknown fields, wrong types,
//! Bloblang that does not parse, fields not supported yet), so every error carries the
//! position serde_yaml knows for it and a config that loads is a config that runs.
//! Component config structs live beside their components (`components/`); this module
//! holds the top level and the shared machinery.

pub mod component;
pub mod duration;
pub mod env;
pub mod set;

use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use component::{Component, Kind};
pub use duration::Duration;

use crate::components::inputs::InputKind;
use crate::components::outputs::OutputKind;
use crate::components::processors::ProcessorConfig;

/// A config error with the position it refers to, when known.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ConfigError {
    pub fn at(line: usize, column: usize, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line,
            column,
            message: message.into(),
        }
    }

    fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }

    fn from_yaml(err: serde_yaml::Error) -> Self {
        let (line, column) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
        let text = err.to_string();
        // serde_yaml appends " at line L column C"; we print the position in front.
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ConfigError::at(line, column, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    pub input: Component<InputKind>,
    /// Upstream's `buffer` section; only `none` exists for request/response traffic.
    #[serde(default)]
    pub buffer: Option<BufferConfig>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    pub output: Component<OutputKind>,
    #[serde(default)]
    pub logger: LoggerConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Accepted for upstream compatibility; sluice has no tracer.
    #[serde(default)]
    pub tracer: Option<TracerConfig>,
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// Accepted for upstream compatibility: wait before shutting down (default none).
    #[serde(default)]
    pub shutdown_delay: Duration,
    /// sluice's own section: shards, pinning, io_uring memory.
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(20)
}

/// `http:` — the shared server for service endpoints and inputs with no `address`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub address: String,
    pub enabled: bool,
    pub root_path: String,
    pub debug_endpoints: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: "0.0.0.0:4195".into(),
            enabled: true,
            root_path: "/benthos".into(),
            debug_endpoints: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    pub none: EmptyObject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracerConfig {
    pub none: EmptyObject,
}

/// `{}` in YAML (also accepts `null`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyObject {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Upstream's processing threads; sluice runs processors on the shard that took the
    /// request, so only the default (-1) and positive values are accepted, and ignored.
    pub threads: i64,
    pub processors: Vec<Component<ProcessorConfig>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            threads: -1,
            processors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum LogLevel {
    #[serde(alias = "off", alias = "NONE", alias = "none")]
    OFF,
    #[serde(alias = "fatal")]
    FATAL,
    #[serde(alias = "error")]
    ERROR,
    #[serde(alias = "warn")]
    WARN,
    #[serde(alias = "info")]
    INFO,
    #[serde(alias = "debug")]
    DEBUG,
    #[serde(alias = "trace", alias = "ALL", alias = "all")]
    TRACE,
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_yaml::from_str(s).map_err(|_| format!("unknown log level {s:?}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggerConfig {
    pub level: LogLevel,
    pub format: LogFormat,
    pub add_timestamp: bool,
    pub static_fields: std::collections::BTreeMap<String, String>,
}

impl Default for LoggerConfig {
    fn default() -> Self {
        LoggerConfig {
            level: LogLevel::INFO,
            format: LogFormat::Logfmt,
            add_timestamp: true,
            static_fields: [("@service".to_string(), "sluice".to_string())].into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Metrics are served in Prometheus text format on `/metrics`.
    #[serde(default)]
    pub prometheus: Option<PrometheusConfig>,
    #[serde(default)]
    pub none: Option<EmptyObject>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prometheus: Some(PrometheusConfig::default()),
            none: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    #[serde(default)]
    pub use_histogram_timing: bool,
    #[serde(default)]
    pub add_process_metrics: bool,
    #[serde(default)]
    pub add_go_metrics: bool,
}

/// `runtime:` — how sluice lays itself out on the machine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Number of shards (one thread each); 0 = one per CPU in `cpus` or per online CPU.
    pub shards: usize,
    /// CPUs to pin shards to, in order (shard i on `cpus[i % len]`); empty = all online
    /// CPUs.
    pub cpus: Vec<usize>,
    /// io_uring buffer memory per shard; glommio locks about three times this, so the
    /// default is sized from `ulimit -l` to fit every shard.
    pub io_memory_bytes: Option<usize>,
    /// How long a shard keeps polling its sockets after the last event before it
    /// sleeps (trades idle CPU for latency); `None`: `runtime::poller::DEFAULT_SPIN`.
    pub spin_before_park: Option<Duration>,
}

/// Reads, interpolates, overrides and parses one config file.
pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::at(1, 1, format!("cannot read config: {e}")).in_file(&name))?;
    parse(&text, overrides).map_err(|e| e.in_file(&name))
}

/// Every problem in one config file. serde stops at the first error, so after each
/// error the offending line (and the block nested under it) is blanked out, keeping
/// line numbers, and the text parsed again; an error that only the blanking could
/// cause (a field or type now missing) ends the search.
pub fn lint(path: &Path, overrides: &[String]) -> Vec<ConfigError> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![ConfigError::at(1, 1, format!("cannot read config: {e}")).in_file(&name)]
        }
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut errors: Vec<ConfigError> = Vec::new();
    for _ in 0..MAX_LINT_ERRORS {
        let Err(e) = parse(&lines.join("\n"), overrides) else {
            break;
        };
        let repeated = errors
            .iter()
            .any(|x| (x.line, x.column) == (e.line, e.column));
        let artefact = !errors.is_empty()
            && (e.message.contains("missing field") || e.message.contains("needs a type"));
        if repeated || artefact || e.line == 0 || e.line > lines.len() {
            if errors.is_empty() {
                errors.push(e);
            }
            break;
        }
        blank_block(&mut lines, e.line - 1);
        errors.push(e);
    }
    errors.into_iter().map(|e| e.in_file(&name)).collect()
}

/// At most this many problems are reported per file.
const MAX_LINT_ERRORS: usize = 50;

/// Replaces line `at` and the lines nested deeper under it with empty comments.
fn blank_block(lines: &mut [String], at: usize) {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let own = indent(&lines[at]);
    lines[at] = "#".into();
    for l in lines[at + 1..].iter_mut() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if indent(l) <= own {
            break;
        }
        *l = "#".into();
    }
}

/// Parses config text (see [`load`]).
pub fn parse(text: &str, overrides: &[String]) -> Result<Config, ConfigError> {
    let text = env::interpolate(text, |k| std::env::var(k).ok())?;
    if overrides.is_empty() {
        return serde_yaml::from_str(&text).map_err(ConfigError::from_yaml);
    }
    // Overrides edit the YAML tree, so positions after them refer to the edited document.
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(ConfigError::from_yaml)?;
    for o in overrides {
        set::apply(&mut doc, o).map_err(|m| ConfigError::at(1, 1, format!("--set {o}: {m}")))?;
    }
    let edited = serde_yaml::to_string(&doc).expect("a YAML value serialises");
    serde_yaml::from_str(&edited).map_err(|e| {
        let mut e = ConfigError::from_yaml(e);
        e.message.push_str(" (after --set)");
        e
    })
}

/// The error for a field whose feature sluice has not built yet.
pub const NOT_YET: &str = "not supported yet by sluice (remove it, or leave it empty)";

/// A string field whose feature is not built yet: empty is fine, anything else is an
/// error at the field's own position.
pub fn unsupported_nonempty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    scalar_with(d, |s| {
        if s.is_empty() {
            Ok(String::new())
        } else {
            Err(NOT_YET.to_string())
        }
    })
}

/// A boolean field whose feature is not built yet: `false` is fine, `true` is an error
/// at its position.
pub fn unsupported_true<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    scalar_with(d, |s| match s {
        "false" => Ok(false),
        "true" => Err(NOT_YET.to_string()),
        other => Err(format!("expected true or false, found {other:?}")),
    })
}

/// Deserialises a scalar as text and checks or converts it with `f`. The error is raised
/// inside serde_yaml's visit of that scalar, so it carries the scalar's own line and
/// column (an error returned after deserialising would point at the enclosing map).
pub fn scalar_with<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct V<F>(F);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            (self.0)(s).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
            self.visit_str(&n.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
            self.visit_str(&n.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<T, E> {
            self.visit_str(&n.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<T, E> {
            self.visit_str(&b.to_string())
        }
    }
    d.deserialize_any(V(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::inputs::InputKind;
    use crate::components::outputs::OutputKind;

    #[test]
    fn upstream_shaped_config_with_defaults() {
        let c = parse(
            "input:\n  label: in\n  http_server:\n    path: /w\n\
             pipeline:\n  processors:\n    - noop: {}\n\
             output:\n  label: out\n  sync_response: {}\n  processors:\n    - noop: {}\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.http.address, "0.0.0.0:4195");
        assert_eq!(c.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(c.input.label, "in");
        let InputKind::HttpServer(h) = &c.input.kind;
        assert_eq!(h.path, "/w");
        assert_eq!(h.allowed_verbs, ["POST"]);
        assert_eq!(h.timeout, Duration::from_secs(5));
        assert_eq!(c.pipeline.processors.len(), 1);
        assert!(matches!(c.output.kind, OutputKind::SyncResponse(_)));
        assert_eq!(c.output.processors.len(), 1);
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse(
            "input:\n  http_server: {}\noutput:\n  drop: {}\n  sync_response: {}\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.message.contains("two types, drop and sync_response"),
            "{e}"
        );
        let e = parse(
            "input:\n  http_server:\n    allowed_verbs: []\noutput:\n  drop: {}\n",
            &[],
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (3, 5), "{e}");
        assert!(e.message.contains("allowed_verbs must not be empty"));
        let e = parse("input:\n  http_server: {}\n", &[]).unwrap_err();
        assert!(e.message.contains("missing field `output`"), "{e}");
    }

    #[test]
    fn lint_finds_every_problem() {
        let dir = std::env::temp_dir().join(format!("sluice-lint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(
            &path,
            "input:\n  http_server:\n    bogus: 1\n    timeout: soon\n\
             pipeline:\n  processors:\n    - nonsense:\n        deep: 1\n\
             output:\n  drop: {}\n  extra: 2\n",
        )
        .unwrap();
        let errors = lint(&path, &[]);
        let at: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(at, [(3, 5), (4, 14), (7, 7), (11, 3)], "{errors:?}");
        std::fs::write(&path, "input:\n  http_server: {}\noutput:\n  drop: {}\n").unwrap();
        assert!(lint(&path, &[]).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn set_overrides_apply_before_validation() {
        let c = parse(
            "input:\n  http_server: {}\noutput:\n  drop: {}\n",
            &[
                "runtime.cpus=[0]".into(),
                "input.http_server.timeout=2s".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.runtime.cpus, [0]);
        let InputKind::HttpServer(h) = &c.input.kind;
        assert_eq!(h.timeout, Duration::from_secs(2));
        let e = parse(
            "input:\n  http_server: {}\noutput:\n  drop: {}\n",
            &["input.http_server.timeout=soon".into()],
        )
        .unwrap_err();
        assert!(e.message.contains("(after --set)"), "{e}");
    }
}
