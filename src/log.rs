//! Logging: `logger.level` and `logger.format` (`logfmt` or `json`), one line per event
//! on stderr. Set once at start-up; every shard reads it without locking.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{LogFormat, LogLevel, LoggerConfig};

static LOGGER: OnceLock<LoggerConfig> = OnceLock::new();

/// Installs the logger config (the first call wins), and routes the `log` crate's
/// records (glommio's warnings, for one) through it.
pub fn init(conf: &LoggerConfig) {
    let _ = LOGGER.set(conf.clone());
    if log::set_logger(&Bridge).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// Forwards `log` records from libraries to [`log`], with their target as a field.
struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        enabled(level_of(m.level()))
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let msg = r.args().to_string();
            log(level_of(r.level()), &msg, &[("component", r.target())]);
        }
    }

    fn flush(&self) {}
}

fn level_of(l: log::Level) -> LogLevel {
    match l {
        log::Level::Error => LogLevel::ERROR,
        log::Level::Warn => LogLevel::WARN,
        log::Level::Info => LogLevel::INFO,
        log::Level::Debug => LogLevel::DEBUG,
        log::Level::Trace => LogLevel::TRACE,
    }
}

pub fn enabled(level: LogLevel) -> bool {
    LOGGER.get().map_or(level <= LogLevel::INFO, |c| {
        level <= c.level && c.level != LogLevel::OFF
    })
}

/// Writes one event with extra key/value fields.
pub fn log(level: LogLevel, msg: &str, fields: &[(&str, &str)]) {
    if !enabled(level) {
        return;
    }
    let default = LoggerConfig::default();
    let conf = LOGGER.get().unwrap_or(&default);
    let lvl = match level {
        LogLevel::OFF => return,
        LogLevel::FATAL => "fatal",
        LogLevel::ERROR => "error",
        LogLevel::WARN => "warn",
        LogLevel::INFO => "info",
        LogLevel::DEBUG => "debug",
        LogLevel::TRACE => "trace",
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if conf.add_timestamp {
        pairs.push(("time", rfc3339_now()));
    }
    pairs.push(("level", lvl.to_string()));
    pairs.push(("msg", msg.to_string()));
    for (k, v) in &conf.static_fields {
        pairs.push((k, v.clone()));
    }
    for (k, v) in fields {
        pairs.push((k, v.to_string()));
    }
    let mut line = String::new();
    match conf.format {
        LogFormat::Json => {
            let mut out = Vec::new();
            out.push(b'{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                crate::message::write_json_str(k, &mut out);
                out.push(b':');
                crate::message::write_json_str(v, &mut out);
            }
            out.push(b'}');
            line.push_str(&String::from_utf8_lossy(&out));
        }
        LogFormat::Logfmt => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(k);
                line.push('=');
                if v.is_empty() || v.contains([' ', '"', '=']) {
                    line.push_str(&format!("{v:?}"));
                } else {
                    line.push_str(v);
                }
            }
        }
    }
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let date = crate::http::date::format_imf(secs);
    // Reuse the civil-date code through the IMF text: "Sun, 06 Nov 1994 08:49:37 GMT".
    let s = std::str::from_utf8(&date).unwrap_or("");
    let month = match &s[8..11] {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        _ => 12,
    };
    format!(
        "{}-{month:02}-{}T{}.{:03}Z",
        &s[12..16],
        &s[5..7],
        &s[17..25],
        d.subsec_millis()
    )
}

#[macro_export]
macro_rules! info {
    ($msg:expr $(, $k:literal => $v:expr)* $(,)?) => {
        $crate::log::log($crate::config::LogLevel::INFO, AsRef::<str>::as_ref(&$msg), &[$(($k, &$v.to_string())),*])
    };
}

#[macro_export]
macro_rules! warn {
    ($msg:expr $(, $k:literal => $v:expr)* $(,)?) => {
        $crate::log::log($crate::config::LogLevel::WARN, AsRef::<str>::as_ref(&$msg), &[$(($k, &$v.to_string())),*])
    };
}

#[macro_export]
macro_rules! error {
    ($msg:expr $(, $k:literal => $v:expr)* $(,)?) => {
        $crate::log::log($crate::config::LogLevel::ERROR, AsRef::<str>::as_ref(&$msg), &[$(($k, &$v.to_string())),*])
    };
}
