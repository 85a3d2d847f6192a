//! `demo-host`: see the library documentation (`demo_host`) and `--help`.

use std::process::ExitCode;

use clap::Parser;
use demo_host::{
    cli::{Cli, Command},
    commands, demo, logging,
    script::{self, ScriptControl},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let options = cli.host_options();
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
    }
}
