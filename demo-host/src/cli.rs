//! The command line: global options and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    browser::Browser,
    options::{HostOptions, default_data_dir, default_plugins_dir},
};

/// A stand-in for Contact Desktop: loads integration plugins from a folder and drives them.
#[derive(Debug, Parser)]
#[command(name = "demo-host", version, about, long_about = None)]
pub struct Cli {
    /// The plugins folder to scan (every file with the platform's dynamic library suffix).
    /// Default: `plugins` beside the demo-host executable.
    #[arg(long, global = true, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,

    /// Where plugins keep their files (one subfolder per plugin file).
    /// Default: `contact-desktop-demo` in the platform's per-user data folder.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// How to open a browser: CMD runs through the shell with the URL appended; a non-zero exit
    /// means it could not. Default: the platform's opener (xdg-open, open, start).
    #[arg(long, global = true, value_name = "CMD")]
    pub browser: Option<String>,

    /// The host's own "Login with Microsoft 365": CMD runs through the shell with the requested
    /// scopes appended and prints {"access_token", "client_id", "expires_in"}.
    #[arg(long, global = true, value_name = "CMD")]
    pub sso_command: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The scripted mode: JSON requests on standard input, JSON replies and events on standard
    /// output (see demo-host-script.md).
    Script,
    /// Lists the plugins that load, and the files that do not (with the reason).
    Plugins,
    /// A guided tour: starts the Microsoft 365 emulator, loads the plugins and walks through
    /// context, settings, sign-in, an incoming call, a search and a status change.
    Demo,
    /// Runs the Microsoft 365 emulator alone until Ctrl-C.
    Emulator {
        /// The port to listen on (127.0.0.1); 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

impl Cli {
    /// The host options these arguments give (defaults filled in).
    pub fn host_options(&self) -> HostOptions {
        HostOptions {
            plugins_dir: self.plugins_dir.clone().unwrap_or_else(default_plugins_dir),
            data_dir: self.data_dir.clone().unwrap_or_else(default_data_dir),
            browser: self
                .browser
                .clone()
                .map_or(Browser::Platform, Browser::Command),
            sso_command: self.sso_command.clone(),
            in_process: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "demo-host",
            "--plugins-dir",
            "/p",
            "script",
            "--data-dir",
            "/d",
            "--browser",
            "true",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Script));
        let o = cli.host_options();
        assert_eq!(o.plugins_dir, PathBuf::from("/p"));
        assert_eq!(o.data_dir, PathBuf::from("/d"));
        assert!(matches!(o.browser, Browser::Command(ref c) if c == "true"));
        assert!(o.sso_command.is_none());
        let cli = Cli::try_parse_from(["demo-host", "emulator", "--port", "8123"]).unwrap();
        assert!(matches!(cli.command, Command::Emulator { port: 8123 }));
        assert!(Cli::try_parse_from(["demo-host"]).is_err());
    }
}
