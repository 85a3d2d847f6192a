//! `cargo +nightly fuzz run graph_contact_json`: the body is `contact_ms365::fuzzing::graph_contact_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contact_ms365::fuzzing::graph_contact_json(data));
