//! Integration tests: a spawned emulator driven over HTTP with reqwest.

mod common;
mod contacts;
mod control_and_faults;
mod device_code;
mod directory;
mod discovery_and_authorize;
mod graph;
mod mint;
mod presence;
mod tokens;
