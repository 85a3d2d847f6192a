//! The command line: global options and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    browser::Browser,
    human::HumanCommand,
    options::{HostOptions, default_data_dir, default_plugins_dir},
    profile::ProfileArgs,
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

    /// The Contact Desktop username given to the plugins (sync, call, search, status,
    /// settings). Kept in DATA_DIR/host.json for later commands. Default: empty.
    #[arg(long, global = true, value_name = "NAME")]
    pub username: Option<String>,

    /// The host's country, ISO 3166 alpha-2: the default region of numbers without a country
    /// code (sync, call, search, status, settings). Kept in DATA_DIR/host.json. Default: DE.
    #[arg(long, global = true, value_name = "CC")]
    pub country: Option<String>,

    /// A licensed add-on (repeatable; sync, call, search, status, settings). Kept in
    /// DATA_DIR/host.json. Default: contact_connect.
    #[arg(long = "addon", global = true, value_name = "NAME")]
    pub addons: Vec<String>,

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
    /// A guided tour (no human needed, about 10 s): starts the Microsoft 365 emulator, loads
    /// the plugins and walks through context, settings, sign-in, a contact sync with progress,
    /// incoming calls, searches and presence both ways.
    Demo,
    /// Runs the Microsoft 365 emulator alone until Ctrl-C.
    Emulator {
        /// The port to listen on (127.0.0.1); 0 picks a free one.
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Syncs the contacts now (signing in first when needed) and prints the counts.
    Sync {
        /// How long to wait for an interactive sign-in, in seconds.
        #[arg(long, default_value_t = 120, value_name = "S")]
        sign_in_timeout: u64,
        /// Print the scripted mode's reply line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Who is calling from NUMBER (as a phone system delivers it; the words are joined
    /// with spaces, so `call +49 89 1234567` works unquoted; put `--` before a number that
    /// starts with `-`).
    Call {
        /// The number.
        #[arg(required = true, num_args = 1.., value_name = "NUMBER")]
        number: Vec<String>,
        /// Print the scripted mode's reply line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Searches the phonebook (the words are joined with spaces).
    Search {
        /// The query.
        #[arg(required = true, num_args = 1.., value_name = "QUERY")]
        query: Vec<String>,
        /// At most this many results (0..=200).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=200))]
        limit: u32,
        /// Print the scripted mode's reply line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Both sides of presence (Contact status, Teams presence) and the integration's state.
    Status {
        /// Print the scripted mode's reply line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Changes the plugin's settings (it keeps them in its data folder) and prints the state;
    /// values are JSON or plain text, e.g. `microsoft_integration=true presence_poll_ms=500
    /// graph=http://127.0.0.1:8400/v1.0`. Without pairs, prints the state.
    Settings {
        /// KEY=VALUE pairs (the keys of the scripted mode's `settings` op).
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Print the scripted mode's reply line instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// The human command this is, with whether `--json` was given; `None` for the others.
    pub fn human(&self) -> Option<(HumanCommand, bool)> {
        let cmd = match self {
            Command::Sync {
                sign_in_timeout,
                json,
            } => (
                HumanCommand::Sync {
                    sign_in_timeout_s: *sign_in_timeout,
                },
                *json,
            ),
            Command::Call { number, json } => (
                HumanCommand::Call {
                    number: number.join(" "),
                },
                *json,
            ),
            Command::Search { query, limit, json } => (
                HumanCommand::Search {
                    query: query.join(" "),
                    limit: *limit,
                },
                *json,
            ),
            Command::Status { json } => (HumanCommand::Status, *json),
            Command::Settings { pairs, json } => (
                HumanCommand::Settings {
                    pairs: pairs.clone(),
                },
                *json,
            ),
            Command::Script | Command::Plugins | Command::Demo | Command::Emulator { .. } => {
                return None;
            }
        };
        Some(cmd)
    }
}

impl Cli {
    /// The host context given on the command line (`--username`, `--country`, `--addon`).
    pub fn profile_args(&self) -> ProfileArgs {
        ProfileArgs {
            username: self.username.clone(),
            country: self.country.clone(),
            addons: self.addons.clone(),
        }
    }

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

    #[test]
    fn human_commands_and_the_host_context() {
        let cli = Cli::try_parse_from([
            "demo-host",
            "call",
            "+49",
            "89",
            "1234567",
            "--json",
            "--username",
            "a@b.example",
            "--addon",
            "x",
            "--addon",
            "contact_connect",
        ])
        .unwrap();
        assert_eq!(
            cli.command.human(),
            Some((
                HumanCommand::Call {
                    number: "+49 89 1234567".into()
                },
                true
            ))
        );
        let p = cli.profile_args();
        assert_eq!(p.username.as_deref(), Some("a@b.example"));
        assert_eq!(p.addons, ["x", "contact_connect"]);
        assert_eq!(p.country, None);

        let cli = Cli::try_parse_from([
            "demo-host",
            "--country",
            "AT",
            "search",
            "zoe",
            "--limit",
            "3",
        ])
        .unwrap();
        assert_eq!(
            cli.command.human(),
            Some((
                HumanCommand::Search {
                    query: "zoe".into(),
                    limit: 3
                },
                false
            ))
        );
        assert_eq!(cli.profile_args().country.as_deref(), Some("AT"));
        assert!(Cli::try_parse_from(["demo-host", "search", "x", "--limit", "201"]).is_err());
        assert!(Cli::try_parse_from(["demo-host", "call"]).is_err());
        let cli = Cli::try_parse_from(["demo-host", "call", "0800", "1", "--json"]).unwrap();
        assert!(
            matches!(cli.command.human(), Some((HumanCommand::Call { ref number }, true)) if number == "0800 1")
        );
        let cli = Cli::try_parse_from(["demo-host", "call", "--", "-1"]).unwrap();
        assert!(
            matches!(cli.command.human(), Some((HumanCommand::Call { ref number }, false)) if number == "-1")
        );
        let cli = Cli::try_parse_from(["demo-host", "sync"]).unwrap();
        assert_eq!(
            cli.command.human(),
            Some((
                HumanCommand::Sync {
                    sign_in_timeout_s: 120
                },
                false
            ))
        );
        let cli = Cli::try_parse_from(["demo-host", "settings", "presence_poll_ms=500"]).unwrap();
        assert!(
            matches!(cli.command.human(), Some((HumanCommand::Settings { ref pairs }, false)) if pairs.len() == 1)
        );
        assert!(
            Cli::try_parse_from(["demo-host", "demo"])
                .unwrap()
                .command
                .human()
                .is_none()
        );
    }
}
