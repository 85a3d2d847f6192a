//! `cargo +nightly fuzz run script_line`: the body is `demo_host::fuzzing::script_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| demo_host::fuzzing::script_line(data));
