//! What the host is told on its command line, shared by every mode.

use std::path::PathBuf;

use crate::{browser::Browser, plugins::InProcessPlugin};

/// The folder name under the platform's per-user data folder.
pub const DATA_DIR_NAME: &str = "contact-desktop-demo";

/// The host's options (`--plugins-dir`, `--data-dir`, `--browser`, `--sso-command`).
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The plugins folder to scan.
    pub plugins_dir: PathBuf,
    /// Where plugins keep their files; each plugin gets `data_dir/<file stem>`.
    pub data_dir: PathBuf,
    /// How the host opens a browser.
    pub browser: Browser,
    /// The SSO command, if the host has a "Login with Microsoft 365".
    pub sso_command: Option<String>,
    /// Integrations linked into the host, constructed after the folder's files (tests).
    pub in_process: Vec<InProcessPlugin>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            plugins_dir: default_plugins_dir(),
            data_dir: default_data_dir(),
            browser: Browser::Platform,
            sso_command: None,
            in_process: Vec::new(),
        }
    }
}

/// The default plugins folder: `plugins` beside the demo-host executable (or `./plugins` when
/// the executable's folder is unknown).
pub fn default_plugins_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("plugins")))
        .unwrap_or_else(|| PathBuf::from("plugins"))
}

/// The default data folder: `contact-desktop-demo` in the platform's per-user data folder
/// (e.g. `~/.local/share/contact-desktop-demo` on Linux), or in the temporary folder when the
/// platform has none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(DATA_DIR_NAME)
}
