//! Integration tests: a spawned emulator driven over HTTP with reqwest.

mod common;
mod control_and_faults;
mod device_code;
mod discovery_and_authorize;
mod graph;
mod tokens;
