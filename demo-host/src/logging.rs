//! Logging to standard error (standard output carries the scripted mode's lines).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Sends `tracing` output to standard error. `RUST_LOG` sets the level (default `warn`);
/// plugin log lines use the target `plugin`. Calling it twice is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
