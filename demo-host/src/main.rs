//! `demo-host`: see the library documentation (`demo_host`) and `--help`.

use std::process::ExitCode;

use clap::Parser;
use demo_host::{
    cli::{Cli, Command},
    commands, demo, human, logging,
    script::{self, ScriptControl},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let options = cli.host_options();
    if let Some((cmd, json)) = cli.command.human() {
        return human::run(&options, &cli.profile_args(), json, &cmd);
    }
    match cli.command {
        Command::Script => script::run_with(
            &options,
            std::io::BufReader::new(std::io::stdin()),
            std::io::stdout(),
            ScriptControl {
                handle_signals: true,
                ..ScriptControl::default()
            },
        ),
        Command::Plugins => commands::list_plugins(&options),
        Command::Demo => demo::run(&options),
        Command::Emulator { port } => commands::run_emulator(port),
        // Handled above.
        Command::Sync { .. }
        | Command::Call { .. }
        | Command::Search { .. }
        | Command::Status { .. }
        | Command::Settings { .. } => ExitCode::SUCCESS,
    }
}
