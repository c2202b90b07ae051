//! The `sluice` command: parses the CLI, loads the config, hands over to the runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sluice::config::{self, LogLevel};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Request/response stream engine for Redpanda Connect configs"
)]
struct Cli {
    /// Config file to run (same as `sluice run CONFIG`).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    /// Override a config field: `--set path.to.field=value` (repeatable).
    #[arg(long = "set", global = true)]
    set: Vec<String>,
    /// Override `logger.level`.
    #[arg(long = "log.level", global = true)]
    log_level: Option<LogLevel>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a config.
    Run { config: Option<PathBuf> },
    /// Check configs; prints every problem as FILE:LINE:COL: message.
    Lint {
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Run a Bloblang mapping over stdin, one message per line.
    Blobl {
        /// Read the mapping from a file.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        mapping: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Lint { configs }) => lint(&configs, &cli.set),
        Some(Command::Blobl { file, mapping }) => sluice::bloblang::cli::run(file, mapping),
        Some(Command::Run { config }) => match config.or(cli.config) {
            Some(path) => run(&path, &cli.set, cli.log_level),
            None => usage("run needs a config file"),
        },
        None => match cli.config {
            Some(path) => run(&path, &cli.set, cli.log_level),
            None => usage("give a config: sluice run CONFIG"),
        },
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn usage(msg: &str) -> i32 {
    eprintln!("sluice: {msg} (see --help)");
    2
}

fn run(path: &std::path::Path, set: &[String], level: Option<LogLevel>) -> i32 {
    match config::load(path, set) {
        Ok(mut conf) => {
            if let Some(level) = level {
                conf.logger.level = level;
            }
            sluice::runtime::run(conf)
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn lint(paths: &[PathBuf], set: &[String]) -> i32 {
    let mut failed = 0;
    for path in paths {
        for e in config::lint(path, set) {
            println!("{e}");
            failed += 1;
        }
    }
    i32::from(failed > 0)
}
