//! Logging: JSON lines (or plain text for a terminal) on stdout, written by a
//! background thread so a slow log consumer never stalls request handling.
//!
//! Rule for every log call in the crate: never a token, cookie value, secret or query
//! string. Identify requests by id and path.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Keep the guard alive until exit: dropping it
/// flushes the last lines.
pub fn init(config: &LogConfig) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let filter = EnvFilter::builder().parse_lossy(&config.level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
    }
    guard
}
