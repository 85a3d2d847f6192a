//! `cargo +nightly fuzz run presence_json`: the body is `contact_ms365::fuzzing::presence_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contact_ms365::fuzzing::presence_json(data));
