//! Replays every saved fuzz input (the seed corpus and each crash the fuzzer found) through the
//! same function the `cargo fuzz` target runs; see `fuzz/README.md`. Runs on stable, in
//! `cargo test`; the fuzzer itself is not part of CI.

use std::path::{Path, PathBuf};

/// Every file of `fuzz/regressions/<target>/`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "{}: expected a seed corpus of at least 3 inputs",
        dir.display()
    );
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    for file in inputs(target) {
        let data = std::fs::read(&file).expect("a saved input");
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails again (input {:?})",
            file.display(),
            String::from_utf8_lossy(&data)
        );
    }
}

#[test]
fn phone_lookup() {
    replay("phone_lookup", contact_ms365::fuzzing::phone_lookup);
}

#[test]
fn graph_contact_json() {
    replay(
        "graph_contact_json",
        contact_ms365::fuzzing::graph_contact_json,
    );
}

#[test]
fn presence_json() {
    replay("presence_json", contact_ms365::fuzzing::presence_json);
}

#[test]
fn loopback_request() {
    replay("loopback_request", contact_ms365::fuzzing::loopback_request);
}
