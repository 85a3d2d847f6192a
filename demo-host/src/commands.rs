//! The human commands `plugins` and `emulator`.

use std::{
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool, atomic::Ordering},
    time::Duration,
};

use ms365_emulator::{EmulatorConfig, EmulatorHandle};
use serde_json::Value;

use crate::{
    options::HostOptions,
    output::{LineSink, Output},
    session::Session,
};

/// A sink that drops every line (for commands that print their own text).
struct Discard;

impl LineSink for Discard {
    fn reply(&mut self, _: &Value) {}
    fn event(&mut self, _: &Value) {}
}

/// `demo-host plugins`: loads the plugins folder, lists what loaded (name, version, host-api
/// version, file) and what did not (file, reason), switches the plugins off again.
pub fn list_plugins(options: &HostOptions) -> ExitCode {
    let session = Session::start(options, Output::new(Discard));
    println!("Plugins folder: {}", options.plugins_dir.display());
    if session.plugins().is_empty() && session.rejected().is_empty() {
        println!("No plugin files found.");
    }
    if !session.plugins().is_empty() {
        println!("Loaded:");
        for p in session.plugins() {
            println!(
                "  {} {} (host-api {})  {}",
                p.name, p.version, p.api_version, p.file
            );
        }
    }
    if !session.rejected().is_empty() {
        println!("Not loaded:");
        for r in session.rejected() {
            println!("  {}: {}", r.file, r.reason);
        }
    }
    session.shutdown();
    ExitCode::SUCCESS
}

/// `demo-host emulator --port N`: runs the Microsoft 365 emulator until Ctrl-C (or SIGTERM).
pub fn run_emulator(port: u16) -> ExitCode {
    let emulator = match EmulatorHandle::spawn(EmulatorConfig {
        port,
        ..Default::default()
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("demo-host: cannot start the emulator on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Microsoft 365 emulator running at {}", emulator.base_url());
    println!("  authority: {}", emulator.authority());
    println!("  graph:     {}", emulator.graph_url());
    println!("  client_id: {}", emulator.client_id());
    println!("Press Ctrl-C to stop.");
    let stop = Arc::new(AtomicBool::new(false));
    let mut ids = Vec::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        match signal_hook::flag::register(signal, stop.clone()) {
            Ok(id) => ids.push(id),
            Err(e) => eprintln!("demo-host: cannot handle signal {signal}: {e}"),
        }
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    println!("Stopping the emulator.");
    emulator.shutdown();
    ExitCode::SUCCESS
}
