//! `cargo +nightly fuzz run phone_lookup`: the body is `contact_ms365::fuzzing::phone_lookup`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contact_ms365::fuzzing::phone_lookup(data));
