//! The `tmuxd` binary: parses arguments, sets up logging, runs a verb and
//! turns its result into an exit status (0 ok, 2 bad input, 1 failure).

use std::io::IsTerminal;

use clap::Parser;
use tmuxd::cli::{self, Cli, LogFormat, Verb};

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.verb, Verb::Serve));
    if let Err(e) = cli::run(cli) {
        eprintln!("tmuxd: {e}");
        std::process::exit(e.exit_code());
    }
}

/// Logs go to stderr (journald reads it under systemd); `RUST_LOG`
/// overrides the level: `info` for the daemon, `warn` for other verbs.
fn init_logging(format: LogFormat, daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
