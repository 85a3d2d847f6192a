//! How the host "opens a browser" when a plugin asks it to (`--browser CMD`, the platform's
//! opener, or an in-process stand-in for the demo).

use std::{fmt, sync::Arc, time::Duration};

use crate::shell;

/// How long an opener may take before the host gives up on it.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// An in-process opener: answers whether it could open the URL.
pub type OpenFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The host's browser.
#[derive(Clone, Default)]
pub enum Browser {
    /// The platform's opener (`xdg-open`, `open`, `start`); when none works the URL is written
    /// to standard error for the user and the answer is "could not open".
    #[default]
    Platform,
    /// `--browser CMD`: run through the shell with the URL appended as its last argument; a
    /// non-zero exit means the browser could not be opened.
    Command(String),
    /// A function (the demo's in-process "browser").
    InProcess(OpenFn),
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Browser::Platform => f.write_str("Platform"),
            Browser::Command(c) => f.debug_tuple("Command").field(c).finish(),
            Browser::InProcess(_) => f.write_str("InProcess"),
        }
    }
}

impl Browser {
    /// Opens `url`; `true` when a browser was opened. Bounded by [`OPEN_TIMEOUT`].
    pub fn open(&self, url: &str) -> bool {
        match self {
            Browser::Command(cmd) => run_opener(&shell::command_line(cmd, &[url])),
            Browser::InProcess(f) => f(url),
            Browser::Platform => {
                let opened = platform_openers()
                    .iter()
                    .any(|opener| run_opener(&shell::command_line(opener, &[url])));
                if !opened {
                    eprintln!(
                        "demo-host: could not open a browser; open this address yourself: {url}"
                    );
                }
                opened
            }
        }
    }
}

fn platform_openers() -> &'static [&'static str] {
    if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["start \"\""]
    } else {
        &["xdg-open"]
    }
}

fn run_opener(line: &str) -> bool {
    match shell::run(line, OPEN_TIMEOUT) {
        Ok(status) if status.success() => true,
        Ok(status) => {
            tracing::info!("the browser command ended with {status}");
            false
        }
        Err(e) => {
            tracing::info!("the browser command could not run: {e}");
            false
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_command_gets_the_url_last_and_its_exit_status_counts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        let cmd = format!("printf %s >{}", shell::quote(file.to_str().unwrap()));
        let url = "http://127.0.0.1:1/authorize?a=1&b='2'";
        assert!(Browser::Command(cmd).open(url));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), url);
        assert!(!Browser::Command("false".into()).open(url));
        assert!(!Browser::Command("/no/such/browser".into()).open(url));
        let f: OpenFn = Arc::new(|u: &str| u.starts_with("http"));
        assert!(Browser::InProcess(f).open(url));
    }
}
