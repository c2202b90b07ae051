//! `log` processor: writes a log line per message (the message text interpolated) and
//! passes the message on unchanged.

use serde::Deserialize;

use crate::components::{Context, InterpolatedString};
use crate::config::LogLevel;
use crate::message::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "info")]
    pub level: LogLevel,
    #[serde(default = "empty")]
    pub message: InterpolatedString,
    /// Static fields added to each line.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
}

fn info() -> LogLevel {
    LogLevel::INFO
}

fn empty() -> InterpolatedString {
    InterpolatedString::new("").expect("static")
}

pub fn process<'a>(conf: &Config, cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
    if !crate::log::enabled(conf.level) {
        return 0;
    }
    let fields: Vec<(&str, &str)> = conf
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for i in 0..batch.len() {
        let text = match conf.message.0.render(cx.arena, batch, i) {
            Ok(t) => t,
            Err(e) => cx.arena.alloc_str(&format!("log message failed: {e}")),
        };
        crate::log::log(conf.level, text, &fields);
    }
    0
}
