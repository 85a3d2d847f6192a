//! `cargo +nightly fuzz run loopback_request`: the body is `contact_ms365::fuzzing::loopback_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contact_ms365::fuzzing::loopback_request(data));
